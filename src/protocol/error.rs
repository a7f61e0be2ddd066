//! Protocol errors with memcached's exact wire text, and what the connection
//! does after each.

/// What the connection does after an invalid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Reply (unless silent) and go on with the next request.
    Continue,
    /// Reply, then discard this many more bytes (a rejected value block,
    /// including its trailing `\r\n`) before parsing again. The bytes may
    /// not have arrived yet.
    Swallow(usize),
    /// Reply (if the error has text) and close the connection.
    Close,
}

/// A client request memcached would refuse. Each variant maps to one exact
/// reply line (see [`ProtocolError::wire_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `ERROR`: unknown command, empty line, wrong verb case, ...
    UnknownCommand,
    /// `CLIENT_ERROR bad command line format`
    BadCommandLine,
    /// `CLIENT_ERROR bad data chunk`
    BadDataChunk,
    /// `SERVER_ERROR object too large for cache`
    TooLarge,
    /// `CLIENT_ERROR invalid exptime argument`
    InvalidExptime,
    /// `CLIENT_ERROR invalid numeric delta argument`
    InvalidDelta,
    /// `CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]`
    DeleteUsage,
    /// `CLIENT_ERROR invalid exptime argument` for `flush_all <junk>`. Kept
    /// apart from [`ProtocolError::InvalidExptime`] because memcached counts
    /// the request in `cmd_flush` and, under `-F`, answers
    /// `CLIENT_ERROR flush_all not allowed` instead (its `-F` check comes
    /// first).
    FlushDelay,
    /// `CLIENT_ERROR invalid shutdown mode`: `shutdown <junk>`. memcached
    /// sends it only when `-A` is on; without `-A` every `shutdown` line
    /// gets `ERROR: shutdown not enabled`, so the caller must send that
    /// instead when shutdown is disabled.
    ShutdownMode,
    /// Meta: `CLIENT_ERROR invalid flag`
    InvalidFlag,
    /// Meta: `CLIENT_ERROR duplicate flag`
    DuplicateFlag,
    /// Meta `md`/`ma`: `CLIENT_ERROR invalid or duplicate flag`
    InvalidOrDuplicateFlag,
    /// Meta: `CLIENT_ERROR bad token in command line format`
    BadToken,
    /// Meta `b`: `CLIENT_ERROR error decoding key`
    DecodingKey,
    /// Meta: `CLIENT_ERROR opaque token too long`
    OpaqueTooLong,
    /// Meta: `CLIENT_ERROR options flags are too long`
    FlagsTooLong,
    /// The same refusal as `ms`, `md` and `ma` word it.
    OptionsTooLong,
    /// `CLIENT_ERROR incorrect length for M token`
    MTokenLength,
    /// `CLIENT_ERROR invalid mode for ms M token`
    MsMode,
    /// `CLIENT_ERROR invalid mode for ma M token`
    MaMode,
    /// `CLIENT_ERROR invalid numeric initial value`
    InitialValue,
    /// `CLIENT_ERROR invalid numeric delta value`
    DeltaValue,
    /// A line over the limit without a newline: close, no reply.
    LineTooLong,
    /// An HTTP request line or similar: close without a reply.
    Hangup,
}

impl ProtocolError {
    /// The reply line without its `\r\n`, or `None` when memcached sends
    /// nothing.
    pub fn wire_text(&self) -> Option<&'static str> {
        match self {
            ProtocolError::UnknownCommand => Some("ERROR"),
            ProtocolError::BadCommandLine => Some("CLIENT_ERROR bad command line format"),
            ProtocolError::BadDataChunk => Some("CLIENT_ERROR bad data chunk"),
            ProtocolError::TooLarge => Some("SERVER_ERROR object too large for cache"),
            ProtocolError::InvalidExptime | ProtocolError::FlushDelay => {
                Some("CLIENT_ERROR invalid exptime argument")
            }
            ProtocolError::InvalidDelta => Some("CLIENT_ERROR invalid numeric delta argument"),
            ProtocolError::DeleteUsage => {
                Some("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")
            }
            ProtocolError::ShutdownMode => Some("CLIENT_ERROR invalid shutdown mode"),
            ProtocolError::InvalidFlag => Some("CLIENT_ERROR invalid flag"),
            ProtocolError::DuplicateFlag => Some("CLIENT_ERROR duplicate flag"),
            ProtocolError::InvalidOrDuplicateFlag => Some("CLIENT_ERROR invalid or duplicate flag"),
            ProtocolError::BadToken => Some("CLIENT_ERROR bad token in command line format"),
            ProtocolError::DecodingKey => Some("CLIENT_ERROR error decoding key"),
            ProtocolError::OpaqueTooLong => Some("CLIENT_ERROR opaque token too long"),
            ProtocolError::FlagsTooLong => Some("CLIENT_ERROR options flags are too long"),
            ProtocolError::OptionsTooLong => Some("CLIENT_ERROR options flags too long"),
            ProtocolError::MTokenLength => Some("CLIENT_ERROR incorrect length for M token"),
            ProtocolError::MsMode => Some("CLIENT_ERROR invalid mode for ms M token"),
            ProtocolError::MaMode => Some("CLIENT_ERROR invalid mode for ma M token"),
            ProtocolError::InitialValue => Some("CLIENT_ERROR invalid numeric initial value"),
            ProtocolError::DeltaValue => Some("CLIENT_ERROR invalid numeric delta value"),
            ProtocolError::LineTooLong | ProtocolError::Hangup => None,
        }
    }
}
