//! A backbone kind defined outside npe, without forking it: `conv_stack`, a plain stack of
//! conv3×3-ReLU-maxpool layers whose output is flattened. The program registers the kind's description with
//! the core (validation, output shape, parameters) and its forward pass with each backend, then
//! runs the normal `npe` command line:
//!
//! ```sh
//! cargo run --release --example custom_backbone -- check examples/custom_backbone.yaml
//! cargo run --release --example custom_backbone -- train examples/custom_backbone.yaml
//! ```

use npe::core::ir::{Role, Sig};
use npe::core::model::{Init, ParamKind, ParamSpec};
use npe::core::nodes::Params;
use npe::core::registry::{CustomBackbone, parse_params};
use serde::Deserialize;
use std::process::ExitCode;
use std::sync::Arc;

/// The kind's YAML parameters (besides `kind` and `input`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvStackParams {
    /// Output channels of each conv3×3 layer.
    channels: Vec<usize>,
}

/// The core half: what validation and the parameter layout need.
struct ConvStack;

impl CustomBackbone for ConvStack {
    fn kind(&self) -> &str {
        "conv_stack"
    }
    fn summary(&self) -> &str {
        "conv3×3-ReLU-maxpool layers, flattened (example of a user-defined kind)"
    }
    fn validate(&self, params: &Params) -> Result<(), String> {
        let p: ConvStackParams = parse_params(params)?;
        if p.channels.is_empty() || p.channels.contains(&0) {
            return Err("`channels` needs at least one layer, all > 0".into());
        }
        Ok(())
    }
    fn output(&self, params: &Params, input: &Sig) -> Result<Sig, String> {
        let p: ConvStackParams = parse_params(params)?;
        let Some([h, w]) = input.spatial else {
            return Err(format!("conv_stack needs images, got {input}"));
        };
        let shrink = 1 << p.channels.len();
        if h < shrink || w < shrink {
            return Err(format!("{h}×{w} images are too small for {} pooling layers", p.channels.len()));
        }
        Ok(Sig::vector(Role::Features, p.channels.last().unwrap() * (h / shrink) * (w / shrink)))
    }
    fn parameters(&self, params: &Params, input: &Sig) -> Vec<ParamSpec> {
        let p: ConvStackParams = parse_params(params).expect("validated");
        let mut specs = vec![];
        let mut cin = input.channels;
        for (i, &c) in p.channels.iter().enumerate() {
            let fan_in = cin * 9;
            let param = |name: String, shape: Vec<usize>, init| ParamSpec {
                name,
                node: String::new(),
                shape,
                init,
                kind: ParamKind::Weight,
                decay: true,
            };
            specs.push(param(format!("convs.{i}.weight"), vec![c, cin, 3, 3], Init::KaimingNormal { fan_in }));
            specs.push(param(format!("convs.{i}.bias"), vec![c], Init::Zeros));
            cin = c;
        }
        specs
    }
}

fn layers(nc_params: Option<&Params>) -> usize {
    nc_params.and_then(|p| parse_params::<ConvStackParams>(p).ok()).map_or(0, |p| p.channels.len())
}

/// The burn half: the forward pass.
#[cfg(feature = "burn")]
struct ConvStackBurn;

#[cfg(feature = "burn")]
impl npe_backend_burn::BurnBackbone for ConvStackBurn {
    fn forward(
        &self,
        nc: &npe_backend_burn::NodeCtx,
        input: npe_backend_burn::Act,
    ) -> Result<npe_backend_burn::Act, npe_backend_burn::BurnError> {
        use npe_backend_burn::burn::tensor::activation::relu;
        use npe_backend_burn::burn::tensor::{module::max_pool2d, ops::MaxPoolOptions};
        let mut h = input.into_map();
        for i in 0..layers(nc.params) {
            h = max_pool2d(relu(nc.conv(h, &format!("convs.{i}."), 1, 1)?), MaxPoolOptions::new([2, 2]));
        }
        let [n, c, hh, ww] = h.dims();
        Ok(npe_backend_burn::Act::Vec(h.reshape([n, c * hh * ww])))
    }
}

/// The tch half: the forward pass.
#[cfg(feature = "tch")]
struct ConvStackTch;

#[cfg(feature = "tch")]
impl npe_backend_tch::TchBackbone for ConvStackTch {
    fn forward(
        &self,
        nc: &npe_backend_tch::NodeCtx,
        input: npe_backend_tch::Act,
    ) -> Result<npe_backend_tch::Act, npe_backend_tch::TchBackendError> {
        let mut h = input.into_map();
        for i in 0..layers(nc.params) {
            h = nc.conv(&h, &format!("convs.{i}."), 1, 1)?.f_relu()?.f_max_pool2d(
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                false,
            )?;
        }
        Ok(npe_backend_tch::Act::Vec(h.f_flatten(1, -1)?))
    }
}

fn main() -> ExitCode {
    let mut ext = npe::Extensions::default();
    ext.registry.register_backbone(Arc::new(ConvStack)).expect("a new kind name");
    #[cfg(feature = "burn")]
    ext.burn.register("conv_stack", Arc::new(ConvStackBurn));
    #[cfg(feature = "tch")]
    ext.tch.register("conv_stack", Arc::new(ConvStackTch));
    npe::cli::main_with(ext)
}
