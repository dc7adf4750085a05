//! [`forward_object_store!`](crate::forward_object_store): the forwarding half
//! of an `ObjectStore` wrapper.
//!
//! A wrapper in the shape of object_store's `limit.rs` and `throttle.rs` adds
//! one behaviour to a few calls and hands every other call to its inner store
//! unchanged. object_store (0.12) has no trait for "the rest goes to `inner`",
//! so the wrappers here (`store::durable`, `restore::counting`, the tests'
//! fault store) name the calls they forward and write only the ones they change.

/// Implements `object_store::ObjectStore` for a wrapper: the methods named in
/// `forward` call the same method of the field `inner` (a store), the methods
/// written out are the wrapper's own.
///
/// ```text
/// strata::forward_object_store! {
///     impl ObjectStore for Counting => inner {
///         forward: [put_opts, put_multipart_opts, delete, list_with_delimiter, copy, copy_if_not_exists];
///         async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> { … }
///         fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> { … }
///     }
/// }
/// ```
///
/// Forwardable: `put_opts`, `put_multipart_opts`, `get_opts`, `get_range`,
/// `get_ranges`, `head`, `delete`, `list`, `list_with_offset`,
/// `list_with_delimiter`, `copy`, `copy_if_not_exists`, `rename`,
/// `rename_if_not_exists`. A provided method left out of both lists keeps
/// object_store's default, which goes through the wrapper's own methods.
#[macro_export]
macro_rules! forward_object_store {
    (impl ObjectStore for $ty:ty => $inner:tt {
        forward: [$($name:ident),* $(,)?];
        $($item:tt)*
    }) => {
        $crate::forward_object_store!(@next ($ty, $inner) [$($name)*] [] $($item)*);
    };

    // Every named method forwarded: the impl.
    (@next ($ty:ty, $inner:tt) [] [$($out:tt)*] $($item:tt)*) => {
        #[::async_trait::async_trait]
        impl ::object_store::ObjectStore for $ty {
            $($out)*
            $($item)*
        }
    };

    // The signature of each forwardable method.
    (@next $w:tt [put_opts $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out put_opts(
            location: &::object_store::path::Path,
            payload: ::object_store::PutPayload,
            opts: ::object_store::PutOptions
        ) -> ::object_store::PutResult; $($item)*);
    };
    (@next $w:tt [put_multipart_opts $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out put_multipart_opts(
            location: &::object_store::path::Path,
            opts: ::object_store::PutMultipartOptions
        ) -> Box<dyn ::object_store::MultipartUpload>; $($item)*);
    };
    (@next $w:tt [get_opts $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out get_opts(
            location: &::object_store::path::Path,
            options: ::object_store::GetOptions
        ) -> ::object_store::GetResult; $($item)*);
    };
    (@next $w:tt [get_range $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out get_range(
            location: &::object_store::path::Path,
            range: ::std::ops::Range<u64>
        ) -> ::bytes::Bytes; $($item)*);
    };
    (@next $w:tt [get_ranges $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out get_ranges(
            location: &::object_store::path::Path,
            ranges: &[::std::ops::Range<u64>]
        ) -> Vec<::bytes::Bytes>; $($item)*);
    };
    (@next $w:tt [head $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out head(
            location: &::object_store::path::Path
        ) -> ::object_store::ObjectMeta; $($item)*);
    };
    (@next $w:tt [delete $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out delete(
            location: &::object_store::path::Path
        ) -> (); $($item)*);
    };
    (@next $w:tt [list_with_delimiter $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out list_with_delimiter(
            prefix: Option<&::object_store::path::Path>
        ) -> ::object_store::ListResult; $($item)*);
    };
    (@next $w:tt [copy $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out copy(
            from: &::object_store::path::Path,
            to: &::object_store::path::Path
        ) -> (); $($item)*);
    };
    (@next $w:tt [copy_if_not_exists $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out copy_if_not_exists(
            from: &::object_store::path::Path,
            to: &::object_store::path::Path
        ) -> (); $($item)*);
    };
    (@next $w:tt [rename $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out rename(
            from: &::object_store::path::Path,
            to: &::object_store::path::Path
        ) -> (); $($item)*);
    };
    (@next $w:tt [rename_if_not_exists $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@async $w [$($rest)*] $out rename_if_not_exists(
            from: &::object_store::path::Path,
            to: &::object_store::path::Path
        ) -> (); $($item)*);
    };
    (@next $w:tt [list $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@stream $w [$($rest)*] $out list(
            prefix: Option<&::object_store::path::Path>
        ); $($item)*);
    };
    (@next $w:tt [list_with_offset $($rest:ident)*] $out:tt $($item:tt)*) => {
        $crate::forward_object_store!(@stream $w [$($rest)*] $out list_with_offset(
            prefix: Option<&::object_store::path::Path>,
            offset: &::object_store::path::Path
        ); $($item)*);
    };

    // One forwarded method, appended to what is written so far.
    (@async ($ty:ty, $inner:tt) $rest:tt [$($out:tt)*]
        $name:ident($($arg:ident: $t:ty),*) -> $ret:ty; $($item:tt)*) => {
        $crate::forward_object_store!(@next ($ty, $inner) $rest [$($out)*
            async fn $name(&self, $($arg: $t),*) -> ::object_store::Result<$ret> {
                self.$inner.$name($($arg),*).await
            }
        ] $($item)*);
    };
    (@stream ($ty:ty, $inner:tt) $rest:tt [$($out:tt)*]
        $name:ident($($arg:ident: $t:ty),*); $($item:tt)*) => {
        $crate::forward_object_store!(@next ($ty, $inner) $rest [$($out)*
            fn $name(&self, $($arg: $t),*) -> ::futures::stream::BoxStream<
                'static,
                ::object_store::Result<::object_store::ObjectMeta>,
            > {
                self.$inner.$name($($arg),*)
            }
        ] $($item)*);
    };
}
