//! Tells the test targets which brokers the environment names, so a test
//! that cannot run on the broker at hand is compiled as `#[ignore]` (with its
//! reason) instead of returning early and counting as passed:
//!
//! ```ignore
//! #[test]
//! #[cfg_attr(not(kafka_external), ignore = "needs real Kafka: set KAFKA_BOOTSTRAP_SERVERS")]
//! fn needs_real_kafka() { /* ... */ }
//! ```
//!
//! | cfg | set when |
//! |---|---|
//! | `kafka_external` | `KAFKA_BOOTSTRAP_SERVERS` names a broker (else the local Tansu runs) |
//! | `kafka_sasl` | `KAFKA_SASL_BOOTSTRAP_SERVERS` (a SASL_PLAINTEXT listener) |
//! | `kafka_ssl` | `KAFKA_SSL_BOOTSTRAP_SERVERS` (an SSL listener) |
//! | `kafka_sasl_ssl` | `KAFKA_SASL_SSL_BOOTSTRAP_SERVERS` (a SASL_SSL listener) |
//! | `kafka_sasl_user2` | `KAFKA_SASL_USERNAME2` (a second SASL user, with no rights) |
//!
//! `has_kcat` is set when `kcat` runs (with the librdkafka in
//! `KCAT_LIBRDKAFKA_DIR` if set) and can talk to the broker (against the
//! local Tansu, librdkafka newer than 2.0), for the tests of a group mixing
//! this client with librdkafka.
//!
//! `codegen_skip` is set when `tests/codegen.rs` cannot check the generated
//! messages (no `../shared/kafka-protocol/messages` schema folder, or no
//! rustfmt): the check then shows as ignored, except with `CI=true`, where
//! it runs and fails.
//!
//! Nothing here changes the library itself; changing one of these variables
//! rebuilds the crate so the tests see the new set.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for (var, cfg) in [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka_external"),
        ("KAFKA_SASL_BOOTSTRAP_SERVERS", "kafka_sasl"),
        ("KAFKA_SSL_BOOTSTRAP_SERVERS", "kafka_ssl"),
        ("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS", "kafka_sasl_ssl"),
        ("KAFKA_SASL_USERNAME2", "kafka_sasl_user2"),
    ] {
        println!("cargo:rerun-if-env-changed={var}");
        println!("cargo:rustc-check-cfg=cfg({cfg})");
        if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }

    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=RUSTFMT");
    println!("cargo:rustc-check-cfg=cfg(codegen_skip)");
    let schemas = std::path::Path::new("../shared/kafka-protocol/messages");
    if schemas.is_dir() {
        println!("cargo:rerun-if-changed={}", schemas.display());
    }
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_owned());
    let has_rustfmt = std::process::Command::new(rustfmt)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // kcat (librdkafka) for the mixed-group tests: on PATH, with the
    // librdkafka in KCAT_LIBRDKAFKA_DIR if set; against the local Tansu it
    // must be newer than 2.0 (Debian's 2.0.2 fails its ApiVersions).
    println!("cargo:rustc-check-cfg=cfg(has_kcat)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=KCAT_LIBRDKAFKA_DIR");
    let mut kcat = std::process::Command::new("kcat");
    kcat.arg("-V");
    if let Ok(dir) = std::env::var("KCAT_LIBRDKAFKA_DIR") {
        kcat.env("LD_LIBRARY_PATH", dir);
    }
    let librdkafka = kcat
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let v = text
                .split("librdkafka ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_owned();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            Some((parts.next()?, parts.next().unwrap_or(0)))
        });
    let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|v| !v.trim().is_empty());
    if librdkafka.is_some_and(|v| external || v > (2, 0)) {
        println!("cargo:rustc-cfg=has_kcat");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let can_check = schemas.is_dir() && has_rustfmt;
    if !(ci || can_check) {
        println!("cargo:rustc-cfg=codegen_skip");
    }
}
