//! `evconform fuzz` end to end on a few cases: evloop agrees with libevent (needs the player:
//! cc and libevent-dev, as `record`), and the text a divergence is saved as is a valid scenario.

use evloop_conformance::fuzz::{case_scenario, fuzz, regression_text, Divergence, Options};
use evloop_conformance::scenario;
use evloop_scenario::strategies::Config;

#[test]
fn a_few_cases_agree_with_libevent() {
    let opts = Options {
        cases: 40,
        seed: 5,
        case: None,
        backends: vec!["epoll".into(), "poll".into(), "sim".into()],
        jobs: 2,
        save: None,
        config: Config::all(),
        keep_going: true,
        shrink: false,
        progress: false,
        core_fault: None,
        isolate: Some(env!("CARGO_BIN_EXE_evconform").into()),
    };
    let mut out = Vec::new();
    let sum = fuzz(&opts, "all", &mut out).unwrap();
    assert_eq!(sum.cases, 40, "{}", String::from_utf8_lossy(&out));
    assert_eq!(sum.comparisons, 120);
    assert_eq!(sum.libevent_errors, 0, "{:?}", sum.first_libevent_error);
    assert!(
        sum.divergences.is_empty(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn a_saved_case_is_a_valid_regression_scenario() {
    let sc = case_scenario(&Config::all(), 5, 7).unwrap();
    let d = Divergence {
        case: 7,
        backend: "epoll".into(),
        libevent: "libevent-epoll".into(),
        scenario: sc.clone(),
        detail: String::new(),
        signature: "epoll: libevent `cb` vs evloop `cb`".into(),
        shrink_runs: 0,
        saved: None,
    };
    let text = regression_text(&d, 5);
    assert!(text.starts_with("# Found by `evconform fuzz --seed 5 --case 7`"));
    assert_eq!(scenario::parse("saved.scn", &text).unwrap(), sc);
}
