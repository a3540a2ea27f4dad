//! Generates the DPDK bindings at build time and compiles the C shim that
//! exposes DPDK's static-inline fast-path functions as real symbols.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("21.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!(
                "dpdk-sys: DPDK not found by `pkg-config libdpdk` ({e}).\n\
                 Install it with scripts/setup.sh (Debian: libdpdk-dev)."
            );
            std::process::exit(1);
        }
    };
    // The root crate's build.rs reads this as DEP_DPDK_VERSION.
    println!("cargo:version={}", dpdk.version);
    println!("cargo:rustc-env=DPDK_PKG_VERSION={}", dpdk.version);

    // pkg-config's cflags carry `-include rte_config.h` and the -march DPDK was
    // built for; both the shim and bindgen must see exactly what DPDK saw.
    let cflags = cflags_from_cli();

    let mut shim = cc::Build::new();
    shim.file("src/shim.c").opt_level(3).warnings(false);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("rvs_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("src/wrapper.h")
        .clang_args(cflags.iter())
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("RVS_.*")
        // Packed headers that contain aligned unions (L2TPv2, GTP-PSC) cannot be
        // expressed in Rust; rvs never touches them, so keep them opaque.
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_psc_.*")
        .opaque_type("rte_flow_item_l2tpv2")
        .opaque_type("rte_flow_item_gtp_psc")
        // Static-inline functions have no symbol; the shim's rvs_* stand in.
        .generate_inline_functions(false)
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed over the DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("cannot write bindings");
}

fn cflags_from_cli() -> Vec<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config --cflags libdpdk");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
