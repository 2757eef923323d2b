//! Plaintext accuracy of a scenario per round (a quick tuning aid):
//! `cargo run --release -p spddl-experiments --example accuracy_probe -- key=value ...`
use spddl_experiments::driver::{federation, run_mode};
use spddl_experiments::metrics::{Mode, RoundMetrics};
use spddl_experiments::scenario::Scenario;

fn main() -> anyhow::Result<()> {
    let mut s = Scenario::default();
    for a in std::env::args().skip(1) {
        s.set(&a).map_err(anyhow::Error::msg)?;
    }
    let fed = federation(&s)?;
    let show = |_: Mode, m: &RoundMetrics| {
        println!(
            "round {:>3} accuracy {:.4} loss {:.4}",
            m.round, m.accuracy, m.loss
        )
    };
    run_mode(&s, &fed, Mode::Plaintext, None, &show)?;
    Ok(())
}
