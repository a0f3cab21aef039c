//! Fetching the values with retries: exponential backoff with jitter until the timeout is
//! spent, each retry logged as one short line.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::client::{Client, Outcome, Transient};
use crate::error::Error;
use crate::resolve::Resolver;
use crate::secret::Values;
use crate::settings::{Settings, human};

/// The first pause between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest pause between attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest one attempt may take, from resolving the host to the last byte.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the server for this container's values, retrying what may pass (the network,
/// a restarting or busy server) until `settings.timeout` is spent, and stopping at once
/// on a refusal (400, 401, 403, 404) or an unusable answer.
///
/// Each retry is logged to `log` as one line; the returned error is the one line to
/// show when giving up. Neither ever holds a value or the token.
pub fn fetch(
    settings: &Settings,
    resolver: &Resolver,
    log: &mut dyn Write,
) -> Result<Values, Error> {
    let client = Client::new(settings, resolver)?;
    let deadline = Instant::now() + settings.timeout;
    let mut backoff = Backoff::new(FIRST_DELAY, MAX_DELAY);
    let mut earlier: Option<Transient> = None;
    for attempt in 1.. {
        let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
        let (reason, asked) = match client.attempt(attempt_deadline) {
            Outcome::Values(values) => return Ok(values),
            Outcome::Fatal(error) => return Err(error),
            Outcome::Retry { reason, after } => (reason, after),
        };
        // Never sooner than the server asked, never sooner than the backoff says.
        let delay = backoff.next(jitter()).max(asked.unwrap_or_default());
        if Instant::now() + delay >= deadline {
            // An attempt that the deadline cut short says less than what
            // the attempt before it was told (a refused connection, an
            // unknown name).
            let cut_short = reason.is_timeout() && attempt_deadline == deadline;
            let last = match earlier {
                Some(earlier) if cut_short => earlier,
                _ => reason,
            };
            return Err(give_up(settings, last));
        }
        // A log line lost to a closed stderr must not stop the retries.
        let _ = writeln!(
            log,
            "{} attempt {attempt} failed: {}; retrying in {}",
            crate::PREFIX,
            crate::one_line(&reason.to_string()),
            human(delay)
        );
        std::thread::sleep(delay);
        earlier = Some(reason);
    }
    unreachable!("the attempts run until one succeeds or the deadline passes")
}

fn give_up(settings: &Settings, reason: Transient) -> Error {
    let url = settings.url.to_string();
    let after = human(settings.timeout);
    match reason {
        Transient::Status { status, message } => Error::Unavailable {
            url,
            after,
            status,
            message,
        },
        reason => Error::Unreachable {
            url,
            after,
            hint: reason.hint(settings),
            last: reason.to_string(),
        },
    }
}

fn jitter() -> u32 {
    let mut bytes = [0; 4];
    crate::sys::random(&mut bytes);
    u32::from_ne_bytes(bytes)
}

/// Exponential backoff: each pause doubles up to a cap, and is drawn between half and all
/// of its nominal length, so that pods started together do not retry together.
pub(crate) struct Backoff {
    nominal: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self {
            nominal: first,
            cap,
        }
    }

    /// The next pause; `jitter` is a random number.
    pub(crate) fn next(&mut self, jitter: u32) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(self.cap);
        let half = nominal / 2;
        let spread = half.as_nanos() * u128::from(jitter) / u128::from(u32::MAX);
        half + Duration::from_nanos(u64::try_from(spread).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut lowest = Backoff::new(FIRST_DELAY, MAX_DELAY);
        let mut highest = Backoff::new(FIRST_DELAY, MAX_DELAY);
        let ms = Duration::from_millis;
        let expected = [250, 500, 1000, 2000, 4000, 5000, 5000, 5000];
        for nominal in expected {
            assert_eq!(lowest.next(0), ms(nominal / 2));
            assert_eq!(highest.next(u32::MAX), ms(nominal));
        }
    }

    #[test]
    fn jittered_pauses_stay_within_half_and_all_of_the_nominal() {
        let mut backoff = Backoff::new(FIRST_DELAY, MAX_DELAY);
        let mut nominal = FIRST_DELAY;
        for _ in 0..20 {
            let delay = backoff.next(jitter());
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay:?} for {nominal:?}"
            );
            nominal = (nominal * 2).min(MAX_DELAY);
        }
    }
}
