//! The one error type of the renderer.
//!
//! Every refusal is decided before a pixel is allocated (scale, line length,
//! image size), so a caller can map these to client errors (400/413/422)
//! without worrying that work was wasted. [`RenderError::kind`] is the single
//! string used for the JSON `error.type`, the log field and the metric label.

use thiserror::Error;

/// Why a couplet could not be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    /// The integer upscaling factor is outside `1..=MAX_SCALE`.
    #[error("scale {scale} is outside 1..={max}")]
    InvalidScale {
        /// The scale that was asked for.
        scale: u32,
        /// The largest accepted scale.
        max: u32,
    },
    /// The image would have more pixels than the renderer is willing to allocate.
    #[error("a {width}x{height} image exceeds the limit of {max_pixels} pixels")]
    TooLarge {
        /// Width the image would have, in pixels.
        width: u64,
        /// Height the image would have, in pixels.
        height: u64,
        /// The pixel-count cap.
        max_pixels: u64,
    },
    /// One line has more characters than a scroll can hold.
    #[error("{line} has {chars} characters, more than the limit of {max}")]
    TooLong {
        /// Which line: `"upper"`, `"lower"` or `"hengpi"`.
        line: &'static str,
        /// Its length in characters (Unicode scalar values).
        chars: usize,
        /// The largest accepted length.
        max: usize,
    },
    /// The PNG encoder failed (it writes to memory, so this points at a bug).
    #[error("PNG encoding failed: {0}")]
    Encode(#[source] png::EncodingError),
}

impl RenderError {
    /// A stable, low-cardinality name for this error: the JSON `error.type`,
    /// the log field and the metric label all use it.
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::InvalidScale { .. } => "invalid_scale",
            RenderError::TooLarge { .. } => "too_large",
            RenderError::TooLong { .. } => "too_long",
            RenderError::Encode(_) => "encode",
        }
    }
}

impl From<png::EncodingError> for RenderError {
    fn from(e: png::EncodingError) -> Self {
        RenderError::Encode(e)
    }
}
