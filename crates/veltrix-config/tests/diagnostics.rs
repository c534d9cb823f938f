//! Snapshot tests of `check` diagnostics: one small fixture per family of
//! mistakes, every diagnostic in its one-line form (file:line:column: key:
//! message (help)). Snapshots live in tests/snapshots.

use veltrix_config::{Source, compile};

fn diagnostics_of(sources: &[Source]) -> String {
    match compile(sources) {
        Ok(_) => "valid".to_string(),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|d| d.one_line())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    diagnostics_of(&[Source::new(format!("{name}.toml"), text)])
}

macro_rules! snapshot_fixture {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), fixture(stringify!($name)));
        }
    )*};
}

snapshot_fixture!(
    unknown_names,
    unknown_keys,
    wrong_types,
    fields,
    expressions,
    hunts,
    rules_shape,
    views,
    syntax,
    puzzles,
    api_keys
);

#[test]
fn api_keys_compile_to_hashes_and_sorted_scopes() {
    let text = "[[server.api_keys]]\nname = \"ops\"\nsha256 = \"8D969EEF6ECAD3C29A3A629280E686CF0C3F5D5A86AFF3CA12020C923ADC6C92\"\nscopes = [\"read\", \"admin\", \"read\"]\n";
    let config = compile(&[Source::new("k.toml", text)]).unwrap();
    let key = &config.server.api_keys[0];
    assert_eq!(key.name, "ops");
    assert_eq!(key.sha256[..4], [0x8d, 0x96, 0x9e, 0xef]);
    assert_eq!(
        key.scopes,
        [veltrix_config::Scope::Read, veltrix_config::Scope::Admin]
    );
    assert!(key.allows(veltrix_config::Scope::Ingest));
    assert!(!format!("{key:?}").contains("8d969eef"));
}

#[test]
fn definitions_across_files_merge_and_duplicates_name_both_places() {
    let a = Source::new(
        "a.toml",
        "[events.login]\n[rules.hello]\non = \"login\"\nreward = { points = 1 }\n[server]\npartitions = 2\n",
    );
    let b = Source::new(
        "b.toml",
        "[currencies.coins]\n[rules.hello]\non = \"login\"\nreward = { coins = 1 }\n[server]\nlisten = \"127.0.0.1:1\"\n",
    );
    insta::assert_snapshot!("multi_file", diagnostics_of(&[a, b]));
}

#[test]
fn files_merge_when_names_do_not_clash() {
    let a = Source::new(
        "a.toml",
        "[events.login]\n[rules.hello]\non = \"login\"\nreward = { coins = 1 }\n",
    );
    let b = Source::new("b.toml", "[currencies.coins]\n[leaderboards.global]\n");
    let config = compile(&[a, b]).expect("valid");
    assert_eq!(config.rules[0].reward.currencies, vec![(0, 1)]);
    assert_eq!(config.leaderboards.len(), 1);
}

#[test]
fn example_configuration_is_valid() {
    let path = format!(
        "{}/../../examples/golden-compass/veltrix.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        diagnostics_of(&[Source::new("veltrix.toml", text)]),
        "valid"
    );
}

#[test]
fn expression_error_columns_point_into_the_expression() {
    let text = "[events.e.fields]\nn = \"integer\"\n[rules.r]\non = \"e\"\nwhen = \"event.n > 1 && event.m\"\nreward = { points = 1 }\n";
    let errors = compile(&[Source::new("c.toml", text)]).unwrap_err();
    let d = errors.iter().find(|d| d.code == "expression").unwrap();
    assert_eq!((d.line, d.column), (5, 24));
    assert_eq!(&text[d.span.clone()], "event.m");
}

#[test]
fn the_version_ignores_how_the_path_was_spelled_but_not_the_content() {
    let text = "[events.login]\n";
    let version = |name: &str, text: &str| compile(&[Source::new(name, text)]).unwrap().version;
    assert_eq!(
        version("examples/x/veltrix.toml", text),
        version("./examples/x/veltrix.toml", text)
    );
    assert_eq!(
        version("veltrix.toml", text),
        version("/abs/path/veltrix.toml", text)
    );
    assert_ne!(
        version("veltrix.toml", text),
        version("veltrix.toml", "[events.logout]\n")
    );
    assert_ne!(version("a.toml", text), version("b.toml", text));
    // Comments, formatting and the [server] section are not part of it.
    let full = "[server]\nlisten = \"127.0.0.1:7400\"\n[events.login]\n[leaderboards.global]\n";
    let reformatted = "# a comment\n[events.login]\n\n[server]\nlisten = \"127.0.0.1:9000\"\n\n[leaderboards.global] # all points\n";
    assert_eq!(version("v.toml", full), version("v.toml", reformatted));
    assert_ne!(
        version("v.toml", full),
        version("v.toml", "[events.login]\n[leaderboards.daily]\n")
    );
    assert_ne!(
        version("v.toml", "[engine]\nlateness = \"1d\"\n[events.login]\n"),
        version("v.toml", "[engine]\nlateness = \"2d\"\n[events.login]\n")
    );
}
