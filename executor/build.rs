//! Embeds an rpath to the libpython the executor links, so `pickleball-executor` starts
//! without `LD_LIBRARY_PATH` on machines where CPython lives outside the loader's paths, and
//! sets pyo3's `Py_3_*` cfgs for code that depends on the CPython version, and names that
//! version (`PICKLEBALL_PYTHON_VERSION`) for messages.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    let version = config.version();
    println!(
        "cargo:rustc-env=PICKLEBALL_PYTHON_VERSION={}.{}",
        version.major, version.minor
    );
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
