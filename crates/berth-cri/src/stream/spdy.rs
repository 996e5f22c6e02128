//! SPDY/3.1 as the kubelet's streaming clients use it (and as the tests' client speaks it) (client-go's SPDY round tripper,
//! moby/spdystream): the client opens streams with SYN_STREAM, each carrying its role in a
//! header (`streamType`, and `port`/`requestID` for port forwarding); the server answers
//! each with SYN_REPLY and then both sides send DATA frames, a FIN flag half-closing a
//! stream. PINGs are echoed. Header blocks are zlib-compressed with SPDY/3's dictionary, one
//! compression stream per direction for the whole connection. Flow control (WINDOW_UPDATE,
//! SETTINGS) is read and ignored: those clients neither send nor honour it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
/// The largest frame accepted (the client's data frames are 32 KiB).
const MAX_FRAME: usize = 1 << 20;
/// How much one DATA frame carries when sending.
pub const CHUNK: usize = 32 << 10;
/// RST_STREAM's CANCEL status.
pub const CANCEL: u32 = 5;

/// Words of SPDY/3's header compression dictionary, each preceded by its length.
const DICT_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes, phrases, dates and common values, run together.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's header dictionary (its Adler-32, 0xe3c6a7c2, is the dictionary id in every
/// header block's zlib header).
fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICT_WORDS {
            d.extend_from_slice(&u32::try_from(w.len()).unwrap_or(0).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICT_TAIL.as_bytes());
        d
    })
}

/// What the client did.
#[derive(Debug)]
pub enum Event {
    /// A new stream, with its (lower-case) headers.
    Stream {
        /// Its id.
        id: u32,
        /// Its headers.
        headers: HashMap<String, String>,
    },
    /// Bytes on a stream.
    Data {
        /// The stream.
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The client will send no more on the stream.
    Fin(u32),
    /// The client dropped the stream.
    Reset(u32),
}

/// Sends frames; cloned by every task that writes to the connection.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Vec<u8>>,
    // Header blocks share one compression stream: they are compressed and queued in order.
    z: Arc<tokio::sync::Mutex<Compress>>,
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    let len = u32::try_from(body.len()).unwrap_or(0) & 0x00ff_ffff;
    f.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn data_frame(id: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    let len = u32::try_from(data.len()).unwrap_or(0) & 0x00ff_ffff;
    f.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// A header block, uncompressed: a count, then length-prefixed names and values.
fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let n = |x: usize| u32::try_from(x).unwrap_or(0).to_be_bytes();
    let mut b = n(headers.len()).to_vec();
    for (k, v) in headers {
        b.extend_from_slice(&n(k.len()));
        b.extend_from_slice(k.to_ascii_lowercase().as_bytes());
        b.extend_from_slice(&n(v.len()));
        b.extend_from_slice(v.as_bytes());
    }
    b
}

impl Writer {
    async fn send(&self, frame: Vec<u8>) -> bool {
        self.tx.send(frame).await.is_ok()
    }

    /// Sends a frame carrying a header block after `prefix`, compressed onto the
    /// connection's stream and queued with the compressor held: blocks must reach the peer
    /// in the order they were compressed.
    async fn send_headers(&self, kind: u16, prefix: &[u8], headers: &[(&str, &str)]) -> bool {
        let mut z = self.z.lock().await;
        let Some(block) = compress(&mut z, &header_block(headers)) else {
            return false;
        };
        let mut body = prefix.to_vec();
        body.extend_from_slice(&block);
        self.tx.send(control(kind, 0, &body)).await.is_ok()
    }

    /// Accepts stream `id`.
    pub async fn reply(&self, id: u32) -> bool {
        self.send_headers(SYN_REPLY, &(id & 0x7fff_ffff).to_be_bytes(), &[])
            .await
    }

    /// Opens stream `id` with `headers` (a client's SYN_STREAM; ids odd from 1): the id,
    /// no associated stream, priority 0.
    pub async fn open(&self, id: u32, headers: &[(&str, &str)]) -> bool {
        let mut prefix = (id & 0x7fff_ffff).to_be_bytes().to_vec();
        prefix.extend_from_slice(&[0; 6]);
        self.send_headers(SYN_STREAM, &prefix, headers).await
    }

    /// Sends `data` on stream `id`, in frames of at most [`CHUNK`] bytes.
    pub async fn data(&self, id: u32, data: &[u8]) -> bool {
        for c in data.chunks(CHUNK) {
            if !self.send(data_frame(id, 0, c)).await {
                return false;
            }
        }
        true
    }

    /// Half-closes stream `id`: nothing more from this side.
    pub async fn fin(&self, id: u32) -> bool {
        self.send(data_frame(id, FLAG_FIN, &[])).await
    }

    /// Drops stream `id`.
    pub async fn reset(&self, id: u32, status: u32) -> bool {
        let mut body = (id & 0x7fff_ffff).to_be_bytes().to_vec();
        body.extend_from_slice(&status.to_be_bytes());
        self.send(control(RST_STREAM, 0, &body)).await
    }

    /// Ends the session (GOAWAY, last stream 0, status OK).
    pub async fn goaway(&self) -> bool {
        self.send(control(GOAWAY, 0, &[0u8; 8])).await
    }
}

/// Compresses one header block onto the connection's stream (a sync flush ends it).
fn compress(z: &mut Compress, block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + 256);
    let start = z.total_in();
    loop {
        let done = usize::try_from(z.total_in() - start).ok()?;
        z.compress_vec(&block[done..], &mut out, FlushCompress::Sync).ok()?;
        // Done once all the input is in and the flush had room to finish.
        if usize::try_from(z.total_in() - start).ok()? == block.len() && out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(out.capacity());
    }
}

/// The connection's header decompression: the client's blocks, one zlib stream.
struct Inflater(Decompress);

impl Inflater {
    fn new() -> Inflater {
        Inflater(Decompress::new(true))
    }

    fn block(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut used = 0usize;
        loop {
            let before_in = self.0.total_in();
            let before_out = self.0.total_out();
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            match self.0.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync) {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("header block: {e}")),
            }
            used += usize::try_from(self.0.total_in() - before_in).unwrap_or(0);
            let progressed = self.0.total_in() != before_in || self.0.total_out() != before_out;
            if used >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && used >= input.len() {
                return Ok(out);
            }
            if out.len() > MAX_FRAME * 4 {
                return Err("header block too large".into());
            }
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The headers of an uncompressed block, names lower-cased, repeated values NUL-joined.
fn parse_headers(b: &[u8]) -> Option<HashMap<String, String>> {
    let n = be32(b, 0)?;
    let mut at = 4usize;
    let mut h = HashMap::new();
    for _ in 0..n {
        let kl = usize::try_from(be32(b, at)?).ok()?;
        let k = b.get(at + 4..at + 4 + kl)?;
        at += 4 + kl;
        let vl = usize::try_from(be32(b, at)?).ok()?;
        let v = b.get(at + 4..at + 4 + vl)?;
        at += 4 + vl;
        h.insert(
            String::from_utf8_lossy(k).to_ascii_lowercase(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    Some(h)
}

/// Serves SPDY on `io`: returns the writer and the client's events (which end when the
/// connection does).
pub fn start<IO>(io: IO) -> (Writer, mpsc::Receiver<Event>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let mut z = Compress::new(Compression::default(), true);
    let _ = z.set_dictionary(dictionary());
    let writer = Writer {
        tx,
        z: Arc::new(tokio::sync::Mutex::new(z)),
    };
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (etx, erx) = mpsc::channel(256);
    let w = writer.clone();
    tokio::spawn(async move {
        let mut inflater = Inflater::new();
        loop {
            let mut head = [0u8; 8];
            if rd.read_exact(&mut head).await.is_err() {
                break;
            }
            let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let flags = head[4];
            let len = usize::try_from(u32::from_be_bytes([0, head[5], head[6], head[7]])).unwrap_or(usize::MAX);
            if len > MAX_FRAME {
                break;
            }
            let mut body = vec![0u8; len];
            if rd.read_exact(&mut body).await.is_err() {
                break;
            }
            let events = if word & 0x8000_0000 == 0 {
                let id = word & 0x7fff_ffff;
                let mut ev = Vec::new();
                if !body.is_empty() {
                    ev.push(Event::Data { id, data: body });
                }
                if flags & FLAG_FIN != 0 {
                    ev.push(Event::Fin(id));
                }
                ev
            } else {
                let kind = u16::try_from(word & 0xffff).unwrap_or(0);
                match kind {
                    SYN_STREAM if body.len() >= 10 => {
                        let id = be32(&body, 0).unwrap_or(0) & 0x7fff_ffff;
                        let Ok(block) = inflater.block(&body[10..]) else { break };
                        let Some(headers) = parse_headers(&block) else { break };
                        let mut ev = vec![Event::Stream { id, headers }];
                        if flags & FLAG_FIN != 0 {
                            ev.push(Event::Fin(id));
                        }
                        ev
                    }
                    RST_STREAM if body.len() >= 4 => vec![Event::Reset(be32(&body, 0).unwrap_or(0) & 0x7fff_ffff)],
                    PING => {
                        if !w.send(control(PING, 0, &body)).await {
                            break;
                        }
                        Vec::new()
                    }
                    GOAWAY => break,
                    // HEADERS, SETTINGS, WINDOW_UPDATE, a SYN_REPLY (to a client): nothing
                    // to do, but a header block still advances the shared compression stream.
                    SYN_REPLY | 8 if body.len() >= 4 => {
                        if inflater.block(&body[4..]).is_err() {
                            break;
                        }
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            };
            for e in events {
                if etx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    (writer, erx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(d: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(adler32(d), 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_survive_a_shared_compression_stream() {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(dictionary()).unwrap();
        let mut inflater = Inflater::new();
        for i in 0..3 {
            let port = i.to_string();
            let block = header_block(&[("streamType", "data"), ("port", &port)]);
            let wire = compress(&mut z, &block).unwrap();
            let back = inflater.block(&wire).unwrap();
            let h = parse_headers(&back).unwrap();
            assert_eq!(h["streamtype"], "data");
            assert_eq!(h["port"], port);
        }
    }

    #[tokio::test]
    async fn a_session_replies_pings_and_reports_streams_and_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (w, mut events) = start(server);
        let (mut crd, mut cwr) = tokio::io::split(client);
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(dictionary()).unwrap();
        let block = compress(&mut z, &header_block(&[("streamType", "stdin")])).unwrap();
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&block);
        cwr.write_all(&control(SYN_STREAM, 0, &body)).await.unwrap();
        cwr.write_all(&data_frame(1, FLAG_FIN, b"hi")).await.unwrap();
        cwr.write_all(&control(PING, 0, &7u32.to_be_bytes())).await.unwrap();
        match events.recv().await.unwrap() {
            Event::Stream { id, headers } => assert_eq!((id, headers["streamtype"].as_str()), (1, "stdin")),
            e => panic!("{e:?}"),
        }
        assert!(matches!(events.recv().await.unwrap(), Event::Data { id: 1, ref data } if data == b"hi"));
        assert!(matches!(events.recv().await.unwrap(), Event::Fin(1)));
        assert!(w.reply(1).await);
        // The PING's echo and the SYN_REPLY, in either order.
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let mut head = [0u8; 8];
            crd.read_exact(&mut head).await.unwrap();
            assert_eq!(&head[..3], &[0x80, 3, 0]);
            let len = usize::from(head[7]);
            let mut body = vec![0u8; len];
            crd.read_exact(&mut body).await.unwrap();
            if u16::from(head[3]) == PING {
                assert_eq!(body, 7u32.to_be_bytes());
            }
            kinds.push(u16::from(head[3]));
        }
        kinds.sort_unstable();
        assert_eq!(kinds, vec![SYN_REPLY, PING]);
    }
}
