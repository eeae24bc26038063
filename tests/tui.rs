//! `codeq tui` end to end: the real binary in a real terminal (tmux), against the fixture
//! index: type a question, see the expected citation, open the help, quit; and the same
//! under an ACL, where a principal never sees another repository on screen.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture;

/// A tmux server of this test's own (`-L`), so a user's sessions are never touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `codeq ARGS` in a detached 120x40 session in `cwd`, with `vars` set.
    fn start(name: &str, cwd: &Path, vars: &[&str], args: &[&str]) -> Tmux {
        let tmux = Tmux {
            socket: format!("codeq-test-{}-{name}", std::process::id()),
        };
        let mut command = vec![
            "env".to_string(),
            "-u".into(),
            "CODEQ_INDEX_DIR".into(),
            "-u".into(),
            "VISUAL".into(),
        ];
        command.extend(vars.iter().map(|v| v.to_string()));
        command.push(env!("CARGO_BIN_EXE_codeq").into());
        command.extend(args.iter().map(|a| a.to_string()));
        let command = command.join(" ");
        let cwd = cwd.to_str().unwrap();
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            cwd,
            &command,
        ]);
        // Keep the pane after codeq exits, to check how it left the terminal; keep what
        // applications copy with OSC 52 as a paste buffer.
        tmux.run(&["set-option", "-t", "tui", "remain-on-exit", "on"]);
        tmux.run(&["set-option", "-s", "set-clipboard", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed by scripts/setup.sh");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"])
    }

    /// The screen with its colour and style escape sequences.
    fn screen_with_styles(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "tui"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend(keys);
        self.run(&args);
    }

    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "tui", "-l", text]);
    }

    /// Waits until the screen satisfies `done` (the model loads and queries run in real
    /// time, so this polls; the limit only bounds a hang).
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "waited 120 s for {what}; the screen is:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pane_dead(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "tui", "#{pane_dead}"])
            .trim()
            == "1"
    }
}

/// Whether captured text sets a foreground or background colour (39 and 49, "default
/// colour", do not count).
fn has_colours(styled: &str) -> bool {
    (30..=38).chain(40..=48).any(|code| {
        styled.contains(&format!("\x1b[{code}m")) || styled.contains(&format!("\x1b[{code};"))
    })
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn a_question_typed_in_the_tui_shows_its_citation_and_q_quits_cleanly() {
    let fx = fixture();
    let editor_log = fx.home.join("editor-args");
    let editor = fx.home.join("fake-editor.sh");
    std::fs::write(
        &editor,
        format!("#!/bin/sh\necho \"$@\" > {}\n", editor_log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let editor_var = format!("EDITOR={}", editor.display());
    let tmux = Tmux::start("ask", &fx.root, &[&editor_var], &["tui"]);
    tmux.wait_for("the question line", |s| s.contains("Ask (Enter)"));
    tmux.type_text("how is the invoice total with tax computed");
    tmux.keys(&["Enter"]);
    // The answer, its citations and the status line can reach the terminal in more than
    // one frame; wait for the last of them.
    let screen = tmux.wait_for("the answer", |s| {
        s.contains("Citations (") && s.contains("last query")
    });
    println!("{screen}");
    assert!(
        screen.contains("payments:src/lib.rs:"),
        "expected citation missing:\n{screen}"
    );
    assert!(screen.contains("total_with_tax"), "{screen}");
    assert!(screen.contains("last query"), "stage timings: {screen}");
    assert!(screen.contains("as single-user"), "{screen}");
    assert!(
        has_colours(&tmux.screen_with_styles()),
        "colours are on by default"
    );

    // A narrower window stacks the preview under the citations.
    tmux.run(&["resize-window", "-t", "tui", "-x", "80", "-y", "40"]);
    tmux.wait_for("the stacked layout", |s| {
        s.lines().any(|l| l.starts_with("┌ payments:src/lib.rs:"))
    });
    tmux.run(&["resize-window", "-t", "tui", "-x", "120", "-y", "40"]);
    tmux.wait_for("the side-by-side layout", |s| {
        !s.lines().any(|l| l.starts_with("┌ payments:src/lib.rs:"))
    });

    tmux.keys(&["?"]);
    tmux.wait_for("the help", |s| s.contains("Keys (any key closes)"));
    tmux.keys(&["x"]);
    tmux.wait_for("the help to close", |s| {
        !s.contains("Keys (any key closes)")
    });

    // y: path:line of the selected citation goes to the clipboard (OSC 52; tmux keeps it).
    tmux.keys(&["y"]);
    tmux.wait_for("the copy notice", |s| s.contains("copied src/lib.rs:"));
    assert!(
        tmux.run(&["show-buffer"]).starts_with("src/lib.rs:"),
        "clipboard: {:?}",
        tmux.run(&["show-buffer"])
    );

    // o: $EDITOR +LINE FILE runs with the terminal handed over, then the UI comes back.
    tmux.keys(&["o"]);
    // The shell creates the file before `echo` writes to it: wait for the whole line.
    let started = Instant::now();
    let args = loop {
        match std::fs::read_to_string(&editor_log) {
            Ok(args) if args.ends_with('\n') => break args,
            _ => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "$EDITOR never ran"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let expected_file = fx.root.join("payments/src/lib.rs");
    assert!(
        args.starts_with('+') && args.trim_end().ends_with(expected_file.to_str().unwrap()),
        "editor arguments: {args}"
    );
    tmux.wait_for("the UI after the editor", |s| {
        s.contains("Ask (Enter)") && s.contains("Citations (")
    });

    // g: the verdict lands in the eval backlog.
    tmux.keys(&["g"]);
    tmux.wait_for("the verdict notice", |s| s.contains("recorded citation 1"));
    let backlog = std::fs::read_to_string(fx.index_dir.join("backlog.jsonl")).unwrap();
    let last = backlog.lines().last().unwrap();
    assert!(
        last.contains("\"verdict\":\"good\"") && last.contains("payments"),
        "{last}"
    );

    // History: the question comes back with Up in the question line.
    tmux.keys(&["Tab", "Tab", "C-u", "Up"]);
    tmux.wait_for("the recalled question", |s| {
        s.contains("> how is the invoice total with tax computed")
    });

    tmux.keys(&["q"]);
    tmux.wait_for("typing q in the question line, not quitting", |s| {
        s.contains("computedq")
    });
    tmux.keys(&["Tab", "q"]);
    let started = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "q did not quit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = tmux.screen();
    assert!(
        !after.contains("Ask (Enter)"),
        "the alternate screen was not left:\n{after}"
    );
}

#[test]
fn the_tui_shows_a_principal_only_what_the_acl_lets_them_read() {
    let fx = fixture();
    let acl = fx.home.join("tui-acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"search-service\"]\nread = [\"carol\"]\n",
    )
    .unwrap();
    let acl = acl.to_str().unwrap();
    let tmux = Tmux::start(
        "acl",
        &fx.root,
        &["NO_COLOR=1"],
        &["--acl", acl, "--as", "carol", "tui"],
    );
    tmux.wait_for("the question line", |s| s.contains("Ask (Enter)"));
    // A question whose best answer sits in a repository carol may not read.
    tmux.type_text("invoice total_with_tax LineItem refund");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the answer", |s| {
        s.contains("Citations (") || s.contains("No citation matched") || s.contains("error:")
    });
    println!("{screen}");
    assert!(screen.contains("as carol (ACL)"), "{screen}");
    let styled = tmux.screen_with_styles();
    assert!(!has_colours(&styled), "NO_COLOR is set, yet:\n{styled:?}");
    for forbidden in ["payments", "total_with_tax(", "LineItem {", "notes/"] {
        let outside_input = screen
            .lines()
            .filter(|l| !l.contains("> invoice total_with_tax"))
            .any(|l| l.contains(forbidden));
        assert!(!outside_input, "carol sees {forbidden:?}:\n{screen}");
    }
    // The filter offers only what carol may read.
    tmux.keys(&["Tab", "f"]);
    let picker = tmux.wait_for("the picker", |s| s.contains("Restrict to"));
    assert!(picker.contains("repo search-service"), "{picker}");
    assert!(!picker.contains("repo payments"), "{picker}");
    tmux.keys(&["Escape", "C-c"]);
    let started = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Ctrl-C did not quit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn codeq_alone_starts_the_tui_inside_an_index_and_explains_itself_elsewhere() {
    let fx = fixture();
    // Inside the indexed tree it is the TUI, which refuses a pipe instead of drawing into it.
    let out = common::codeq(&fx.root, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("needs a terminal"),
        "{}",
        common::stderr(&out)
    );
    assert!(common::stdout(&out).is_empty());
    // Elsewhere: the help, and what to do.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = common::codeq(elsewhere.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stdout(&out).contains("Usage: codeq"));
    assert!(
        common::stderr(&out).contains("no index here"),
        "{}",
        common::stderr(&out)
    );
}
