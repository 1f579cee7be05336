//! An agent with 200 executors restarts: down for 3 s, then 503 for 1 s, then it
//! accepts SUBSCRIBE. Every executor must be back inside the agent's 2 s
//! re-registration window, without knocking more than 4 times a second meanwhile.

mod support;

use std::time::Duration;

use support::herd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_executors_are_back_inside_the_window_and_polite_meanwhile() {
    let report = herd::run(200, Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(2)).await;
    assert_eq!(report.missing, 0, "executors not back within the 2 s window");
    let worst = report.attempts_per_second.iter().copied().fold(0.0, f64::max);
    let mean = report.attempts_per_second.iter().sum::<f64>() / report.attempts_per_second.len() as f64;
    println!(
        "herd: back p50 {:?} p99 {:?} max {:?}; attempts/s per executor while away ({:?}): mean {mean:.2}, max {worst:.2}",
        herd::quantile(&report.back, 0.5),
        herd::quantile(&report.back, 0.99),
        report.back.last(),
        report.outage,
    );
    assert!(worst <= 4.0, "an executor made {worst:.2} attempts a second");
    assert!(mean >= 1.0 / 2.0, "at least one attempt per MESOS_SUBSCRIPTION_BACKOFF_MAX (2 s): {mean:.2}/s");
}
