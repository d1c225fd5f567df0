//! `larder log --log L [--since COMMIT] [--limit N]`: events in the total
//! order.

use std::process::ExitCode;

use larder::LarderError;
use larder::codec::CodecError;
use serde_json::json;

use super::Ctx;

/// Runs `log`.
pub fn run(
    ctx: &Ctx,
    log: &str,
    since: Option<&str>,
    limit: Option<usize>,
) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    let log = ctx.existing_log(&larder, log)?;
    let mut events = match since {
        Some(s) => {
            let id = larder::git::ObjectId::from_hex(s.as_bytes())
                .map_err(|_| CodecError::InvalidHexId { text: s.into() })?;
            log.wal().read_since(id)?
        }
        None => log.wal().read_all()?,
    };
    larder::crdt::sort_events(&mut events);
    for e in events.iter().take(limit.unwrap_or(usize::MAX)) {
        let data = e
            .payload()
            .to_value()
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .unwrap_or_default();
        ctx.out.emit(
            json!({ "id": e.id().to_hex(), "actor": e.actor().as_str(), "hlc": e.timestamp().to_string(), "kind": e.kind(), "data": data }),
            || {
                format!(
                    "{} {} {} {} {}",
                    e.timestamp(),
                    e.actor(),
                    e.kind(),
                    data,
                    &e.id().to_hex()[..12]
                )
            },
        );
    }
    super::ok()
}
