compile_error!(
    "burn-tch is replaced by a stub in this workspace (see vendor/README.md): \
     use npe-backend-tch for libtorch instead of burn's `tch` feature"
);
