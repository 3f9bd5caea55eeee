//! Work split across the machine's cores: one helper for the decoders, verifiers and writers
//! that cut a slice into one consecutive part per core.

/// `work` on consecutive parts of `items`, one part per core, each part on its own scoped
/// thread (on the calling thread when there is one core or one item). The results come back in
/// the order of the parts; a part whose thread panicked gives `None`.
pub fn map_parts<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<Option<R>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(items.len());
    if threads < 2 {
        return vec![Some(work(items))];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            items.chunks(items.len().div_ceil(threads)).map(|part| scope.spawn(move || work(part))).collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_worked_on_once_and_in_order() {
        for len in [0usize, 1, 2, 3, 17, 1000] {
            let items: Vec<usize> = (0..len).collect();
            let parts = map_parts(&items, <[usize]>::to_vec);
            let joined: Vec<usize> = parts.into_iter().flat_map(|p| p.expect("no panic")).collect();
            assert_eq!(joined, items, "len {len}");
        }
    }

    #[test]
    fn a_panicking_part_gives_none() {
        let items: Vec<u32> = (0..64).collect();
        let parts = map_parts(&items, |part| {
            assert!(!part.contains(&0), "the first part panics");
            part.len()
        });
        assert_eq!(parts[0], None);
        if parts.len() > 1 {
            assert!(parts[1..].iter().all(Option::is_some));
        }
    }
}
