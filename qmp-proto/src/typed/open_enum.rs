//! Enums that stay open to values of newer QEMUs.
//!
//! `#[serde(other)]` would map an unknown value to a unit variant and lose
//! it; [`open_enum!`] keeps it, as `Unknown(String)`, and writes it back out
//! unchanged.

/// Declares a QAPI enum: the known values as unit variants with their wire
/// names, plus `Unknown(String)` for any other value. Serializes to and
/// deserializes from the wire name.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this crate does not know (from a newer QEMU), kept
            /// as it was sent.
            Unknown(alloc::string::String),
        }

        impl $name {
            /// The wire names of the values this crate knows, in the
            /// order they are declared.
            pub const KNOWN: &'static [&'static str] = &[$( $wire, )*];

            /// The value's wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Unknown(name) => name,
                }
            }

            /// The value named `name`; an unknown name gives `Unknown`.
            pub fn from_name(name: &str) -> Self {
                match name {
                    $( $wire => $name::$variant, )*
                    other => $name::Unknown(alloc::string::String::from(other)),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                $name::from_name(name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::typed::open_enum::NameVisitor(
                    stringify!($name),
                    $name::from_name,
                ))
            }
        }
    };
}

pub(crate) use open_enum;

/// Reads a string and names the value with `.1`, borrowing the text when
/// the deserializer allows (no allocation for known values).
pub(crate) struct NameVisitor<T>(pub(crate) &'static str, pub(crate) fn(&str) -> T);

impl<T> serde::de::Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "a {} name (a string)", self.0)
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<T, E> {
        Ok((self.1)(name))
    }
}
