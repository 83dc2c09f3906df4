//! Headless Chromium for the tests of the HTML pages (the job report, the readiness page):
//! finding the binary (`CHROMIUM`, else `chromium` or `chromium-browser` on PATH, which
//! `scripts/test.sh` installs), running it with a fresh profile and a time limit, reading the
//! screenshot it writes (a small PNG decoder) and the DOM it dumps (start tags and their
//! attributes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed.
pub const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// `CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium_binary() -> PathBuf {
    if let Some(c) = std::env::var_os("CHROMIUM").filter(|c| !c.is_empty()) {
        let c = PathBuf::from(c);
        if c.components().count() > 1 {
            assert!(c.is_file(), "CHROMIUM={} does not exist", c.display());
            return c;
        }
        return on_path(c.to_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("CHROMIUM={} is not on PATH", c.display()));
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(on_path)
        .unwrap_or_else(|| {
            panic!(
                "no Chromium: neither `chromium` nor `chromium-browser` is on PATH and CHROMIUM is \
                 not set. `bash scripts/test.sh` installs Debian's `chromium` package \
                 (`sudo apt-get install -y chromium`), or set CHROMIUM to a Chromium or Chrome binary."
            )
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn file_url(p: &Path) -> String {
    let abs = p.canonicalize().expect("absolute path");
    let mut url = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// Runs headless Chromium with a fresh profile under `dir`; its stdout. Killed (its whole process
/// group) after [`CHROMIUM_TIMEOUT`].
pub fn run_chromium(bin: &Path, dir: &Path, name: &str, args: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let profile = dir.join(format!("profile-{name}"));
    let out_path = dir.join(format!("chromium-{name}.stdout"));
    let err_path = dir.join(format!("chromium-{name}.stderr"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for Chromium") {
            break s;
        }
        if Instant::now() > deadline {
            // The group Chromium leads (the browser, its renderer and GPU processes).
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium ({name}) did not finish within {CHROMIUM_TIMEOUT:?}; killed. stderr:\n{}",
                tail(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "Chromium ({name}) failed: {status}; stderr:\n{}",
        tail(&err_path)
    );
    std::fs::read_to_string(&out_path).expect("Chromium's output")
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub struct Image {
    pub width: u32,
    pub height: u32,
    /// 8-bit RGB, row after row.
    pub rgb: Vec<u8>,
}

/// A non-interlaced 8-bit RGB or RGBA PNG (what Chromium writes).
pub fn decode_png(png: &[u8]) -> Image {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                let (depth, colour, interlace) = (data[8], data[9], data[12]);
                assert_eq!(depth, 8, "bit depth");
                assert_eq!(interlace, 0, "interlaced");
                channels = match colour {
                    2 => 3,
                    6 => 4,
                    c => panic!("PNG colour type {c}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    assert!(width > 0 && channels > 0, "no IHDR");
    let raw = inflate(&idat[2..]); // after the zlib header
    let stride = width as usize * channels;
    assert_eq!(raw.len(), (stride + 1) * height as usize, "decoded size");
    let mut pixels = vec![0u8; stride * height as usize];
    for y in 0..height as usize {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                pixels[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 {
                pixels[(y - 1) * stride + x]
            } else {
                0
            };
            let c = if y > 0 && x >= channels {
                pixels[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                f => panic!("PNG filter {f}"),
            };
            pixels[y * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    let rgb = if channels == 3 {
        pixels
    } else {
        pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    Image { width, height, rgb }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// A raw DEFLATE stream (RFC 1951), after puff.c: enough to read a screenshot, no more.
fn inflate(data: &[u8]) -> Vec<u8> {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u64,
        n: u32,
    }
    impl Bits<'_> {
        fn get(&mut self, need: u32) -> u32 {
            while self.n < need {
                let byte = *self.data.get(self.pos).expect("deflate stream ends early");
                self.buf |= u64::from(byte) << self.n;
                self.pos += 1;
                self.n += 8;
            }
            let v = (self.buf & ((1u64 << need) - 1)) as u32;
            self.buf >>= need;
            self.n -= need;
            v
        }
    }
    struct Huffman {
        count: [u16; 16],
        symbol: Vec<u16>,
    }
    fn build(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..16 {
            offs[l] = offs[l - 1] + count[l - 1];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        Huffman { count, symbol }
    }
    fn decode(bits: &mut Bits, h: &Huffman) -> u16 {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.get(1) as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return h.symbol[(index + (code - first)) as usize];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        panic!("bad Huffman code");
    }
    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];

    let mut bits = Bits {
        data,
        pos: 0,
        buf: 0,
        n: 0,
    };
    let mut out: Vec<u8> = Vec::new();
    loop {
        let last = bits.get(1) == 1;
        match bits.get(2) {
            0 => {
                bits.buf = 0;
                bits.n = 0;
                let p = bits.pos;
                let len = u16::from_le_bytes([data[p], data[p + 1]]) as usize;
                out.extend_from_slice(&data[p + 4..p + 4 + len]);
                bits.pos = p + 4 + len;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (build(&l), build(&[5u8; 30]))
                } else {
                    let nlen = bits.get(5) as usize + 257;
                    let ndist = bits.get(5) as usize + 1;
                    let ncode = bits.get(4) as usize + 4;
                    let mut cl = [0u8; 19];
                    for &i in ORDER.iter().take(ncode) {
                        cl[i] = bits.get(3) as u8;
                    }
                    let clh = build(&cl);
                    let mut lengths = Vec::with_capacity(nlen + ndist);
                    while lengths.len() < nlen + ndist {
                        match decode(&mut bits, &clh) {
                            s @ 0..=15 => lengths.push(s as u8),
                            16 => {
                                let prev = *lengths.last().expect("repeat of nothing");
                                let n = 3 + bits.get(2);
                                lengths.extend(std::iter::repeat_n(prev, n as usize));
                            }
                            17 => {
                                let n = 3 + bits.get(3);
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                            _ => {
                                let n = 11 + bits.get(7);
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                        }
                    }
                    (build(&lengths[..nlen]), build(&lengths[nlen..]))
                };
                loop {
                    let sym = decode(&mut bits, &lit) as usize;
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = sym - 257;
                        let len = LBASE[i] as usize + bits.get(u32::from(LEXT[i])) as usize;
                        let d = decode(&mut bits, &dist) as usize;
                        let back = DBASE[d] as usize + bits.get(u32::from(DEXT[d])) as usize;
                        assert!(back <= out.len(), "distance too far back");
                        for _ in 0..len {
                            let b = out[out.len() - back];
                            out.push(b);
                        }
                    }
                }
            }
            _ => panic!("deflate block type 3"),
        }
        if last {
            break;
        }
    }
    out
}

/// One start tag of the serialized DOM: its name and attributes (values unescaped).
pub struct Tag {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    /// Byte offset of the tag's end in the document.
    pub end: usize,
}

/// Start tags of a serialized DOM (Chromium's: attributes in double quotes, text escaped).
pub fn tags(dom: &str) -> Vec<Tag> {
    let b = dom.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        i += off + 1;
        if dom[i..].starts_with("!--") {
            i = dom[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            continue; // an end tag or a doctype
        }
        let name_end = i + dom[i..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(b.len() - i);
        let name = dom[i..name_end].to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        let mut j = name_end;
        loop {
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' {
                break;
            }
            let a_end = j + dom[j..]
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .unwrap_or(b.len() - j);
            let key = dom[j..a_end].to_ascii_lowercase();
            j = a_end;
            let mut value = String::new();
            if j < b.len() && b[j] == b'=' {
                assert_eq!(b[j + 1], b'"', "attribute {key} not in double quotes");
                let v_end = j + 2 + dom[j + 2..].find('"').expect("closing quote");
                value = unescape(&dom[j + 2..v_end]);
                j = v_end + 1;
            }
            attrs.insert(key, value);
        }
        out.push(Tag {
            name,
            attrs,
            end: j + 1,
        });
        i = j;
    }
    out
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

pub fn by_id<'a>(tags: &'a [Tag], id: &str) -> &'a Tag {
    tags.iter()
        .find(|t| t.attrs.get("id").map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no element with id=\"{id}\" in the DOM"))
}

pub fn value<'a>(t: &'a Tag, what: &str) -> &'a str {
    t.attrs
        .get("data-value")
        .unwrap_or_else(|| panic!("{what} without data-value"))
}

/// Fails on anything active or fetched: `<script>`, `<iframe>`, `src` / `href`, event handlers.
pub fn assert_inert(tags: &[Tag]) {
    for t in tags {
        assert_ne!(t.name, "script", "a <script> element in the DOM");
        assert_ne!(t.name, "iframe", "an <iframe> in the DOM");
        for a in ["src", "href"] {
            assert!(
                !t.attrs.contains_key(a),
                "<{} {a}=..> in a self-contained page",
                t.name
            );
        }
        assert!(
            !t.attrs.keys().any(|k| k.starts_with("on")),
            "an event handler on <{}>",
            t.name
        );
    }
}

/// The longest horizontal run of pixels within 6 of `rgb` on any row: a bar of that colour.
pub fn longest_run(img: &Image, rgb: [u8; 3]) -> usize {
    let near = |p: &[u8]| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6);
    let mut longest = 0;
    for line in img.rgb.chunks_exact(img.width as usize * 3) {
        let mut run = 0;
        for p in line.chunks_exact(3) {
            run = if near(p) { run + 1 } else { 0 };
            longest = longest.max(run);
        }
    }
    longest
}
