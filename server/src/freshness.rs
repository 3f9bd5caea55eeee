//! How long what this server serves stays valid: the checkpoint (a bundle-fed mirror serves the
//! bundle's until the next delivery) and the root in force. Shown by `/healthz` and
//! `/v1/mirror/status`, and warned of in the log when close to expiring.

use airlock_proto::api::Freshness;
use airlock_proto::clock::format_duration;
use airlock_proto::{Checkpoint, Timestamp};

use crate::app::App;

/// The root in force is warned of this long before it expires: 30 days.
pub const ROOT_WARNING_MARGIN: u64 = 30 * 86_400;

/// The freshness of what `app` serves at its clock's time; `None` before it holds a checkpoint.
pub fn report(app: &App) -> Option<Freshness> {
    let now = app.config.clock.now();
    let bytes = app.store.checkpoint().ok().flatten()?;
    let checkpoint = Checkpoint::from_note_unverified(&bytes).ok()?;
    let (root_version, root_expires_at) =
        app.registry.with_state(|state| (state.root().root().version, state.root().root().expires));
    // A primary signs its own; a network mirror whose last sync worked fetches new ones.
    let needs_delivery = app.registry.mirror().is_some_and(|mirror| {
        let status = mirror.status();
        app.follower.is_none() || status.last_error.is_some()
    });
    Some(assess(
        now,
        app.config.freshness_margin.as_secs(),
        (checkpoint.expires_at, needs_delivery),
        (root_version, root_expires_at),
    ))
}

/// The report, with a warning for the checkpoint when it needs a delivery and expires within
/// `margin`, and for the root within [`ROOT_WARNING_MARGIN`].
pub fn assess(
    now: Timestamp,
    margin: u64,
    checkpoint: (Timestamp, bool),
    root: (u64, Timestamp),
) -> Freshness {
    let (checkpoint_expires_at, needs_delivery) = checkpoint;
    let (root_version, root_expires_at) = root;
    let checkpoint_left = checkpoint_expires_at.saturating_sub(now);
    let root_left = root_expires_at.saturating_sub(now);
    let mut warnings = Vec::new();
    if needs_delivery && checkpoint_left == 0 {
        warnings.push(format!(
            "the checkpoint expired at {checkpoint_expires_at}: clients refuse this mirror until a newer bundle is imported"
        ));
    } else if needs_delivery && checkpoint_left < margin {
        warnings.push(format!(
            "the checkpoint expires in {} (at {checkpoint_expires_at}), within the {} margin: import a newer bundle before then",
            format_duration(checkpoint_left),
            format_duration(margin)
        ));
    }
    if root_left < ROOT_WARNING_MARGIN {
        warnings.push(format!(
            "root version {root_version} expires in {} (at {root_expires_at}): the root key holders must sign and submit the next root (`airlock root create --from`)",
            format_duration(root_left)
        ));
    }
    Freshness {
        checkpoint_expires_at,
        checkpoint_seconds_left: checkpoint_left,
        checkpoint_needs_delivery: needs_delivery,
        root_version,
        root_expires_at,
        root_seconds_left: root_left,
        warnings,
    }
}

/// Logs each warning of the current report.
pub fn log_warnings(app: &App) {
    if let Some(report) = report(app) {
        for warning in &report.warnings {
            tracing::warn!(
                checkpoint_seconds_left = report.checkpoint_seconds_left,
                root_seconds_left = report.root_seconds_left,
                "{warning}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn warns_within_the_margins_only_when_a_delivery_is_needed() {
        let now = 1_000 * DAY;
        let quiet = assess(now, 7 * DAY, (now + 10 * DAY, true), (2, now + 200 * DAY));
        assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
        assert_eq!(quiet.checkpoint_seconds_left, 10 * DAY);

        let close = assess(now, 7 * DAY, (now + 5 * DAY, true), (2, now + 200 * DAY));
        assert_eq!(close.warnings.len(), 1);
        assert!(close.warnings[0].contains("expires in 5d"), "{:?}", close.warnings);

        // A primary or a syncing mirror renews its checkpoint itself.
        assert!(assess(now, 7 * DAY, (now + 3_600, false), (2, now + 200 * DAY)).warnings.is_empty());

        let expired = assess(now, 7 * DAY, (now - 1, true), (2, now + 200 * DAY));
        assert!(expired.warnings[0].contains("expired"), "{:?}", expired.warnings);

        let root = assess(now, 7 * DAY, (now + 3_600, false), (4, now + 29 * DAY));
        assert_eq!(root.warnings.len(), 1);
        assert!(root.warnings[0].contains("root version 4 expires in 29d"), "{:?}", root.warnings);
    }
}
