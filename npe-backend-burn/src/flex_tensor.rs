//! A float32 burn-flex tensor from npe's kernel output: the one constructor `flex_conv`,
//! `flex_bn` and `flex_eltwise` share.

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType, Shape};

/// `data` as a contiguous f32 flex tensor of `shape`.
pub(crate) fn f32_tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(Shape::from(shape.to_vec())), DType::F32)
}
