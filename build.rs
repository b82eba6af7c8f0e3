//! Link-time fix for ROS 2 Jazzy installed from PyPI wheels (no /opt/ros), node binary only.
//!
//! The wheels' librcl.so needs `*_rosidl_generator_py.so`, which use libpython symbols without
//! listing libpython. When `PIPELINE_SEG_LIBPYTHON` (set by scripts/env.sh only in the wheels
//! case) names libpython, link it with `--no-as-needed` and rpath its directory (DT_RPATH, which
//! also serves transitive dependencies), so the node needs no LD_PRELOAD.
use std::{env, path::Path};

fn main() {
    println!("cargo:rerun-if-env-changed=PIPELINE_SEG_LIBPYTHON");
    if env::var_os("CARGO_FEATURE_ROS").is_none() {
        return;
    }
    let Some(libpython) = env::var_os("PIPELINE_SEG_LIBPYTHON") else { return };
    let libpython = Path::new(&libpython);
    if !libpython.is_file() {
        panic!("PIPELINE_SEG_LIBPYTHON={} is not a file; re-source scripts/env.sh", libpython.display());
    }
    let node = "cargo:rustc-link-arg-bin=pipeline_seg_node";
    println!("{node}=-Wl,--push-state,--no-as-needed");
    println!("{node}={}", libpython.display());
    println!("{node}=-Wl,--pop-state");
    println!("{node}=-Wl,--disable-new-dtags");
    if let Some(dir) = libpython.parent() {
        println!("{node}=-Wl,-rpath,{}", dir.display());
    }
}
