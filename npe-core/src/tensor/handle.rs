//! The opaque tensor handle.

use super::{TResult, TensorError};
use std::any::Any;
use std::fmt;

/// What a backend's tensor type must provide to travel as a [`Tensor`].
trait Payload: Any + Send {
    fn clone_box(&self) -> Box<dyn Payload>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Clone> Payload for T {
    fn clone_box(&self) -> Box<dyn Payload> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A backend tensor behind an opaque handle. Cloning is as cheap as the backend's clone (a
/// reference count for burn and libtorch), never a copy of the data.
pub struct Tensor(Box<dyn Payload>);

impl Tensor {
    /// Wrap a backend tensor.
    pub fn new<T: Any + Send + Clone>(inner: T) -> Self {
        Self(Box::new(inner))
    }

    /// The backend tensor inside (an error if another backend made this handle).
    pub fn get<T: Any>(&self) -> TResult<&T> {
        self.0.as_any().downcast_ref::<T>().ok_or_else(Self::foreign::<T>)
    }

    /// The backend tensor inside, mutably.
    pub fn get_mut<T: Any>(&mut self) -> TResult<&mut T> {
        self.0.as_any_mut().downcast_mut::<T>().ok_or_else(Self::foreign::<T>)
    }

    fn foreign<T>() -> TensorError {
        TensorError::new(format!(
            "a tensor of another backend was passed where `{}` was expected",
            std::any::type_name::<T>()
        ))
    }
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tensor")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_gives_back_its_own_type_only() {
        let mut t = Tensor::new(vec![1.0f32, 2.0]);
        assert_eq!(t.get::<Vec<f32>>().unwrap(), &vec![1.0, 2.0]);
        t.get_mut::<Vec<f32>>().unwrap().push(3.0);
        assert_eq!(t.clone().get::<Vec<f32>>().unwrap().len(), 3);
        let err = t.get::<String>().unwrap_err();
        assert!(err.message.contains("another backend"), "{err}");
    }
}
