//! The README's Python fixture (how other languages spawn Petrel in their tests) is run here
//! with `python3` against the built binary, so the documented snippet keeps working.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

/// The Python code between the README's `python-fixture` markers.
fn readme_block() -> String {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&readme).expect("read README.md");
    let start = text
        .find("<!-- python-fixture:start -->")
        .expect("start marker in README");
    let end = text
        .find("<!-- python-fixture:end -->")
        .expect("end marker in README");
    let block = &text[start..end];
    let code_start = block.find("```python\n").expect("python fence") + "```python\n".len();
    let code_end = block[code_start..].find("```").expect("closing fence") + code_start;
    block[code_start..code_end].to_string()
}

#[test]
fn readme_python_fixture_spawns_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("petrel_fixture.py");
    std::fs::write(&script, readme_block()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .env("PETREL_BIN", BIN)
        .output()
        .expect("python3 is needed for this test (the README's fixture is Python)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "ok");
}
