//! Saved folds: a primary, a mirror and a client each resume their saved fold instead of
//! re-verifying every leaf, and each refuses a saved fold that is damaged, cut short or not of
//! its log, and rebuilds from the log.

use std::path::{Path, PathBuf};

use airlock_proto::api::{seal, unseal, LogSnapshot};
use airlock_server::app::App;
use airlock_server::Config;

use crate::harness::{Server, World};
use crate::mirror::{mirror_config, sync};

/// Opens the data directory in-process: the leaves replayed at open, and the releases it holds.
fn open(config: Config) -> (u64, Vec<String>) {
    let app = App::open(config).unwrap();
    let releases = app.registry.with_state(|state| {
        state.releases().map(|r| format!("{}=={}", r.release.name, r.release.version)).collect()
    });
    (app.registry.replayed_at_open(), releases)
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(path, bytes).unwrap();
}

fn cut_in_half(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// A way to damage a saved file.
type Damage<'a> = &'a dyn Fn(&Path);

/// The snapshot with one frontier hash changed and sealed again: a seal that matches, over a
/// tree that is not the stored log's.
fn reseal_with_another_tree(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let mut snapshot = LogSnapshot::from_bytes(unseal(&bytes).unwrap()).unwrap();
    let size = snapshot.frontier.size();
    let mut hashes = snapshot.frontier.hashes().to_vec();
    hashes[0][0] ^= 1;
    snapshot.frontier = airlock_proto::merkle::Frontier::from_parts(size, hashes).unwrap();
    std::fs::write(path, seal(&snapshot.to_bytes().unwrap())).unwrap();
}

/// A primary that logged `a==1.0` holding `content`, then stopped (saving its fold).
fn stopped_after_one_release(content: &[u8]) -> World {
    let mut world = World::new(1, 1);
    world.write("a.bin", content);
    world.publish("a.bin", "a", "1.0").ok();
    world.server.take().unwrap().stop();
    world
}

#[test]
fn a_primary_resumes_its_saved_fold_and_replays_only_the_leaves_after_it() {
    let mut world = stopped_after_one_release(b"first");
    let snapshot = world.path("data/fold.snapshot");
    let saved_at_two = std::fs::read(&snapshot).expect("the shutdown saved the fold");
    assert_eq!(open(world.config()), (0, vec!["a==1.0".to_owned()]));

    world.server = Some(Server::start(world.config()));
    world.write("b.bin", b"second");
    world.publish("b.bin", "b", "1.0").ok();
    world.server.take().unwrap().stop();
    assert_eq!(open(world.config()).0, 0, "the shutdown saved the grown fold");

    // An older snapshot of the same log: only the leaf after it is replayed.
    std::fs::write(&snapshot, saved_at_two).unwrap();
    assert_eq!(open(world.config()), (1, vec!["a==1.0".to_owned(), "b==1.0".to_owned()]));
}

#[test]
fn a_primary_refuses_a_damaged_cut_foreign_or_resealed_snapshot_and_replays_its_log() {
    let world = stopped_after_one_release(b"first");
    let other = stopped_after_one_release(b"other");

    let snapshot = world.path("data/fold.snapshot");
    let foreign = other.path("data/fold.snapshot");
    let damages: [(&str, Damage); 4] = [
        ("flipped", &flip_last_byte),
        ("cut", &cut_in_half),
        ("foreign", &|path: &Path| {
            std::fs::copy(&foreign, path).unwrap();
        }),
        ("resealed over another tree", &reseal_with_another_tree),
    ];
    for (what, damage) in damages {
        damage(&snapshot);
        assert_eq!(open(world.config()), (2, vec!["a==1.0".to_owned()]), "{what}: the whole log is replayed");
        assert_eq!(open(world.config()).0, 0, "{what}: the replay saved a good snapshot again");
    }
}

#[test]
fn a_mirror_resumes_its_saved_fold_and_refuses_a_damaged_one() {
    let world = World::new(1, 1);
    world.write("a.bin", b"mirrored");
    world.publish("a.bin", "a", "1.0").ok();
    let (config, admin) = mirror_config(&world, "mirror", &world.url());
    let mirror = Server::start(config.clone());
    sync(&mirror, &admin);
    mirror.stop();
    assert_eq!(open(config.clone()), (0, vec!["a==1.0".to_owned()]));
    flip_last_byte(&config.data.join("fold.snapshot"));
    assert_eq!(open(config.clone()), (2, vec!["a==1.0".to_owned()]));
    assert_eq!(open(config).0, 0);
}

/// The client's state file of `which` kind (`fold`, `head`, `leaves`).
fn state_file(world: &World, which: &str) -> PathBuf {
    let logs = world.path("state/logs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == which))
        .collect();
    assert_eq!(found.len(), 1, "{which} files in {}", logs.display());
    found.pop().unwrap()
}

#[test]
fn a_warm_client_pull_reads_the_head_and_index_only_and_a_damaged_fold_is_rebuilt_when_next_needed() {
    let world = World::new(1, 1);
    let publish = |name: &str| {
        world.write(&format!("{name}.bin"), name.as_bytes());
        world.publish(&format!("{name}.bin"), name, "1.0").ok();
    };
    let pull = |name: &str| {
        let out = format!("{name}-out.bin");
        let run = world.pull(&format!("{name}==1.0"), &out).ok();
        assert_eq!(std::fs::read(world.path(&out)).unwrap(), name.as_bytes());
        run
    };
    let quiet = |run: crate::harness::Run| assert!(!run.stderr.contains("rebuilt"), "{}", run.stderr);
    publish("a");
    pull("a");
    let fold = state_file(&world, "fold");
    let before = std::fs::read(&fold).unwrap();
    let head = state_file(&world, "head");
    let head_written = std::fs::metadata(&head).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    quiet(pull("a"));
    assert_eq!(std::fs::read(&fold).unwrap(), before, "a pull that brought no leaf rewrote the fold");
    assert_eq!(
        std::fs::metadata(&head).unwrap().modified().unwrap(),
        head_written,
        "a pull that found the same checkpoint rewrote the head"
    );

    // With no new leaf the fold is not even read: a damaged one goes unnoticed...
    flip_last_byte(&fold);
    quiet(pull("a"));
    // ...until new leaves must be folded: then it is refused and rebuilt from the leaves.
    publish("b");
    pull("b").says("was refused").says("rebuilt from the saved leaves");
    quiet(pull("b"));
    cut_in_half(&fold);
    publish("c");
    pull("c").says("was refused").says("rebuilt from the saved leaves");

    // A damaged index sends the pull to the fold, which writes the index again.
    let index = state_file(&world, "index");
    let bytes = std::fs::read(&index).unwrap();
    let table_end = 8 + u64::from_be_bytes(bytes[..8].try_into().unwrap()) as usize;
    std::fs::write(&index, &bytes[..table_end]).unwrap();
    quiet(pull("a"));
    assert_eq!(std::fs::read(&index).unwrap(), bytes, "the index was written again");
    flip_last_byte(&fold);
    quiet(pull("a"));
    publish("d");
    pull("d").says("rebuilt from the saved leaves");

    // A damaged head alone costs nothing: the fold carries its own checkpoint.
    flip_last_byte(&state_file(&world, "head"));
    quiet(pull("a"));

    // With neither the fold nor the head, nothing can vouch for the leaves: a clear refusal.
    flip_last_byte(&fold);
    flip_last_byte(&state_file(&world, "head"));
    world
        .pull("a==1.0", "a-6.bin")
        .code(1)
        .says("cannot be rebuilt")
        .says("to start again from the pinned root");
}

#[test]
fn a_client_whose_leaves_file_was_cut_fetches_the_leaves_again_and_checks_them() {
    let world = World::new(1, 1);
    for (file, name) in [("a.bin", "a"), ("b.bin", "b")] {
        world.write(file, name.as_bytes());
        world.publish(file, name, "1.0").ok();
    }
    let url = world.url();
    world.cli(&["log", "--server", &url, "--root", "root.cbor"]).ok();
    let leaves = state_file(&world, "leaves");
    let full = std::fs::read(&leaves).unwrap();
    cut_in_half(&leaves);
    let history = world.cli(&["log", "--server", &url, "--root", "root.cbor"]).ok().stdout;
    assert!(history.contains("wheel a==1.0") && history.contains("wheel b==1.0"), "{history}");
    assert_eq!(std::fs::read(&leaves).unwrap(), full, "the leaves were fetched again, byte for byte");
}
