//! Differential tests: LOLWUT's text and LATENCY with the latency monitor
//! off (slotd's only setting), slotd vs redis-server 7.0. The drawings of
//! LOLWUT VERSION 5 and 6 are random in both servers: their shape and
//! caption are checked instead.
use tests::{assert_same, Server};

#[test]
fn lolwut_and_latency_answer_as_redis() {
    assert_same(&[
        &["LOLWUT"],
        &["LOLWUT", "VERSION", "7"],
        &["LOLWUT", "VERSION", "x"],
        &["LOLWUT", "VERSION", "5", "x"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "GRAPH", "command"],
        &["LATENCY", "RESET"],
        &["LATENCY", "RESET", "a", "b"],
        &["LATENCY", "DOCTOR"],
        &["LATENCY", "NOSUCH"],
        &["LATENCY", "LATEST", "x"],
        &["LATENCY", "HELP"],
        &["LATENCY"],
    ]);
}

#[test]
fn lolwut_draws_schotter_and_a_skyline() {
    let s = Server::slotd(&[]);
    let out = s.cli(&["LOLWUT", "VERSION", "5", "10", "2", "2"]);
    assert!(
        out.contains("Georg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15"),
        "{out}"
    );
    // 10 columns of Braille cells per row of the drawing.
    let first = out.lines().next().unwrap();
    assert_eq!(first.chars().count(), 10, "{out}");
    assert!(first
        .chars()
        .all(|c| ('\u{2800}'..='\u{28ff}').contains(&c)));
    let out = s.cli(&["LOLWUT", "VERSION", "6", "12", "4"]);
    assert!(
        out.contains("Original 8 bit image from Plaguemon by hikikomori. Redis ver. 7.0.15"),
        "{out}"
    );
    assert_eq!(
        out.lines().next().unwrap().matches("\u{1b}[0m").count(),
        12,
        "{out}"
    );
}
