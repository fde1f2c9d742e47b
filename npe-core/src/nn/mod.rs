//! Layers written once over [`crate::tensor::Ops`]: each declares its parameters (PyTorch names
//! and initialisation) and runs its forward pass with the handles it declared. Node kinds, built
//! in or a user's, are assembled from these.

mod layers;
mod loss;
mod resnet;

pub use layers::{BatchNorm, Conv2d, Linear, Proj, kaiming, torch_default};
pub use loss::{add_class_vector, add_log_prior, cross_entropy, true_class_mean};
pub use resnet::{CifarResNet, RESNET_DEPTHS, check_depth};
