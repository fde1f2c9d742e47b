//! Compile the C++ shim (`csrc/shim.cpp`: autocast and channels-last, which tch does not bind)
//! against the same libtorch as torch-sys, and embed libtorch's library folders as an rpath, so
//! this crate's tests and examples run without LD_LIBRARY_PATH (scripts/libtorch.sh sets
//! LIBTORCH for the build).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    for dir in libtorch_dirs() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let Some(torch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        panic!("LIBTORCH is not set: run `eval \"$(scripts/libtorch.sh)\"` first (it installs libtorch 2.13.0)");
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .file("csrc/shim.cpp")
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .warnings(false)
        .compile("npe_tch_shim");
}

fn libtorch_dirs() -> Vec<String> {
    let Some(torch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        return vec![];
    };
    let mut dirs = vec![torch.join("lib")];
    // The CUDA runtime wheels sit beside torch in site-packages: nvidia/<pkg>/lib.
    if let Some(site) = torch.parent() {
        if let Ok(rd) = std::fs::read_dir(site.join("nvidia")) {
            dirs.extend(rd.filter_map(|e| e.ok()).map(|e| e.path().join("lib")).filter(|p| p.is_dir()));
        }
    }
    dirs.into_iter().map(|d| d.display().to_string()).collect()
}
