//! A minimal, safe pickle reader: enough of protocols 0–5 to read the CIFAR python release
//! (dicts of lists, bytes and numpy arrays) without Python. Nothing is executed: `GLOBAL` and
//! `REDUCE` build inert records that [`ndarray_u8`] recognises.

use crate::error::Result;
use std::cell::RefCell;
use std::rc::Rc;

/// A decoded pickle value.
#[derive(Clone, Debug)]
pub enum Py {
    /// `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// Integer that fits i64.
    Int(i64),
    /// Float.
    Float(f64),
    /// Bytes (Python 2 `str`, Python 3 `bytes`/`bytearray`).
    Bytes(Rc<Vec<u8>>),
    /// Text.
    Str(Rc<str>),
    /// List.
    List(Rc<RefCell<Vec<Py>>>),
    /// Tuple.
    Tuple(Rc<Vec<Py>>),
    /// Dict (insertion order).
    Dict(Rc<RefCell<Vec<(Py, Py)>>>),
    /// A global reference `module.name`.
    Global(Rc<(String, String)>),
    /// The result of calling a global (REDUCE/NEWOBJ), with state set by BUILD.
    Object(Rc<RefCell<Obj>>),
}

/// Values nest as deep as the file says (a 400 KB pickle can nest lists 200,000 deep), so
/// dropping one must not recurse: the children of every container this drop owns alone are
/// taken out and dropped from a work list instead.
impl Drop for Py {
    fn drop(&mut self) {
        let mut pending = vec![];
        take_children(self, &mut pending);
        while let Some(mut v) = pending.pop() {
            take_children(&mut v, &mut pending);
            // `v` drops here childless, so its own `drop` does no more than this.
        }
    }
}

/// Move the children of `v` into `out`, if `v` is the last owner of its container (a shared
/// container is dropped by its last owner).
fn take_children(v: &mut Py, out: &mut Vec<Py>) {
    match v {
        Py::List(l) => {
            if let Some(l) = Rc::get_mut(l) {
                out.append(l.get_mut());
            }
        }
        Py::Tuple(t) => {
            if let Some(t) = Rc::get_mut(t) {
                out.append(t);
            }
        }
        Py::Dict(d) => {
            if let Some(d) = Rc::get_mut(d) {
                for (k, v) in std::mem::take(d.get_mut()) {
                    out.push(k);
                    out.push(v);
                }
            }
        }
        Py::Object(o) => {
            if let Some(o) = Rc::get_mut(o) {
                let o = o.get_mut();
                out.push(std::mem::replace(&mut o.callable, Py::None));
                out.push(std::mem::replace(&mut o.args, Py::None));
                out.extend(o.state.take());
            }
        }
        _ => {}
    }
}

/// A constructed object: `callable(*args)` then `__setstate__(state)`.
#[derive(Clone, Debug)]
pub struct Obj {
    /// The callable (usually a [`Py::Global`]).
    pub callable: Py,
    /// Its arguments.
    pub args: Py,
    /// BUILD state.
    pub state: Option<Py>,
}

impl Py {
    /// The value as text, for keys (Python 2 pickles use byte strings for keys).
    pub fn as_key(&self) -> Option<String> {
        match self {
            Py::Str(s) => Some(s.to_string()),
            Py::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            // Python 3 pickling Python-2-style byte strings at protocol 2.
            Py::Object(_) => raw_bytes(self).map(|b| String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        }
    }

    /// Look up `key` in a dict.
    pub fn get(&self, key: &str) -> Option<Py> {
        match self {
            Py::Dict(d) => d.borrow().iter().find(|(k, _)| k.as_key().as_deref() == Some(key)).map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// Items of a list or tuple.
    pub fn items(&self) -> Option<Vec<Py>> {
        match self {
            Py::List(l) => Some(l.borrow().clone()),
            Py::Tuple(t) => Some(t.to_vec()),
            _ => None,
        }
    }

    /// Integer value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Py::Int(i) => Some(*i),
            Py::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn global_name(&self) -> Option<String> {
        match self {
            Py::Global(g) => Some(format!("{}.{}", g.0, g.1)),
            _ => None,
        }
    }
}

/// Why a pickle could not be read: message and byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

struct Vm<'a> {
    b: &'a [u8],
    pos: usize,
    stack: Vec<Py>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Py>,
}

const MAX_STACK: usize = 1 << 20;

/// Decode one pickle.
pub fn load(bytes: &[u8]) -> Result<Py, PickleError> {
    let mut vm = Vm { b: bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: Default::default() };
    vm.run()
}

impl<'a> Vm<'a> {
    fn err<T>(&self, at: usize, m: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError { offset: at as u64, message: m.into() })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if self.b.len() - self.pos < n {
            return self.err(self.pos, format!("truncated: needs {n} more bytes, {} left", self.b.len() - self.pos));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let start = self.pos;
        let end = self.b[start..]
            .iter()
            .position(|&c| c == b'\n')
            .ok_or(PickleError { offset: start as u64, message: "unterminated text line".into() })?;
        self.pos = start + end + 1;
        std::str::from_utf8(&self.b[start..start + end]).or_else(|_| self.err(start, "text line is not UTF-8"))
    }

    fn push(&mut self, v: Py) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err(self.pos, "stack too deep");
        }
        self.stack.push(v);
        Ok(())
    }
    fn pop(&mut self, at: usize) -> Result<Py, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return self.err(at, "pop across a mark");
        }
        self.stack.pop().ok_or(PickleError { offset: at as u64, message: "stack underflow".into() })
    }
    fn top(&mut self, at: usize) -> Result<&mut Py, PickleError> {
        self.stack.last_mut().ok_or(PickleError { offset: at as u64, message: "stack underflow".into() })
    }
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Py>, PickleError> {
        let m = self.marks.pop().ok_or(PickleError { offset: at as u64, message: "no mark on the stack".into() })?;
        if m > self.stack.len() {
            return self.err(at, "mark beyond stack");
        }
        Ok(self.stack.split_off(m))
    }
    fn bytes(&mut self, n: usize) -> Result<Py, PickleError> {
        Ok(Py::Bytes(Rc::new(self.take(n)?.to_vec())))
    }
    fn text(&mut self, n: usize, at: usize) -> Result<Py, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Py::Str(Rc::from(s))),
            Err(_) => self.err(at, "string is not UTF-8"),
        }
    }
    fn len_at(&mut self, n: u64, at: usize) -> Result<usize, PickleError> {
        let n = usize::try_from(n).or_else(|_| self.err(at, "length too large"))?;
        if n > self.b.len() - self.pos {
            return self
                .err(at, format!("truncated: a {n}-byte value but only {} bytes left", self.b.len() - self.pos));
        }
        Ok(n)
    }

    fn run(&mut self) -> Result<Py, PickleError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return self.err(at, format!("unsupported pickle protocol {v}"));
                    }
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return self.pop(at),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.top(at)?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Py::None)?,
                0x88 => self.push(Py::Bool(true))?,
                0x89 => self.push(Py::Bool(false))?,
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "00" => Py::Bool(false),
                        "01" => Py::Bool(true),
                        _ => Py::Int(l.trim().parse().or_else(|_| self.err(at, format!("bad INT `{l}`")))?),
                    };
                    self.push(v)?;
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Py::Int(v))?
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Py::Int(v))?
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Py::Int(v))?
                }
                b'L' => {
                    let l = self.line()?.trim_end_matches('L');
                    let v = l.parse().or_else(|_| self.err(at, format!("LONG `{l}` does not fit 64 bits")))?;
                    self.push(Py::Int(v))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as u64 } else { self.u32()? as u64 };
                    let n = self.len_at(n, at)?;
                    if n > 8 {
                        return self.err(at, "integer larger than 64 bits");
                    }
                    let b = self.take(n)?;
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Py::Int(v))?;
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.trim().parse().or_else(|_| self.err(at, "bad FLOAT"))?;
                    self.push(Py::Float(v))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push(Py::Float(v))?;
                }
                b'S' => {
                    let l = self.line()?;
                    let inner = l.trim().trim_matches(|c| c == '\'' || c == '"');
                    self.push(Py::Bytes(Rc::new(inner.as_bytes().to_vec())))?;
                }
                b'T' | b'B' => {
                    let n = self.u32()? as u64;
                    let n = self.len_at(n, at)?;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let n = self.len_at(n as u64, at)?;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                0x8e | 0x96 => {
                    let n = self.u64()?;
                    let n = self.len_at(n, at)?;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                b'V' => {
                    let l = self.line()?;
                    self.push(Py::Str(Rc::from(l)))?;
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let n = self.len_at(n, at)?;
                    let v = self.text(n, at)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let n = self.len_at(n, at)?;
                    let v = self.text(n, at)?;
                    self.push(v)?
                }
                0x8d => {
                    let n = self.u64()?;
                    let n = self.len_at(n, at)?;
                    let v = self.text(n, at)?;
                    self.push(v)?
                }
                b']' => self.push(Py::List(Rc::new(RefCell::new(vec![]))))?,
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Py::List(Rc::new(RefCell::new(items))))?
                }
                b'a' => {
                    let v = self.pop(at)?;
                    match self.top(at)? {
                        Py::List(l) => l.borrow_mut().push(v),
                        _ => return self.err(at, "APPEND to a non-list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Py::List(l) => l.borrow_mut().extend(items),
                        _ => return self.err(at, "APPENDS to a non-list"),
                    }
                }
                b')' => self.push(Py::Tuple(Rc::new(vec![])))?,
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Py::Tuple(Rc::new(items)))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return self.err(at, "stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Py::Tuple(Rc::new(items)))?
                }
                b'}' => self.push(Py::Dict(Rc::new(RefCell::new(vec![]))))?,
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(items)
                        .ok_or(PickleError { offset: at as u64, message: "odd number of dict items".into() })?;
                    self.push(Py::Dict(Rc::new(RefCell::new(pairs))))?
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    match self.top(at)? {
                        Py::Dict(d) => d.borrow_mut().push((k, v)),
                        _ => return self.err(at, "SETITEM on a non-dict"),
                    }
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let p = pairs(items)
                        .ok_or(PickleError { offset: at as u64, message: "odd number of dict items".into() })?;
                    match self.top(at)? {
                        Py::Dict(d) => d.borrow_mut().extend(p),
                        _ => return self.err(at, "SETITEMS on a non-dict"),
                    }
                }
                0x8f => self.push(Py::List(Rc::new(RefCell::new(vec![]))))?,
                0x90 => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Py::List(l) => l.borrow_mut().extend(items),
                        _ => return self.err(at, "ADDITEMS on a non-set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Py::List(Rc::new(RefCell::new(items))))?
                }
                b'c' => {
                    let m = self.line()?.to_string();
                    let n = self.line()?.to_string();
                    self.push(Py::Global(Rc::new((m, n))))?
                }
                0x93 => {
                    let n = self.pop(at)?;
                    let m = self.pop(at)?;
                    match (m.as_key(), n.as_key()) {
                        (Some(m), Some(n)) => self.push(Py::Global(Rc::new((m, n))))?,
                        _ => return self.err(at, "STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = Py::Object(Rc::new(RefCell::new(Obj { callable, args, state: None })));
                    self.push(v)?
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = Py::Object(Rc::new(RefCell::new(Obj { callable, args, state: None })));
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop(at)?;
                    match self.top(at)? {
                        Py::Object(o) => o.borrow_mut().state = Some(state),
                        Py::Dict(d) => {
                            if let Py::Dict(s) = &state {
                                d.borrow_mut().extend(s.borrow().iter().cloned());
                            }
                        }
                        _ => return self.err(at, "BUILD on a value without state"),
                    }
                }
                b'p' => {
                    let k = self.line()?.trim().parse().or_else(|_| self.err(at, "bad PUT"))?;
                    let v = self.top(at)?.clone();
                    self.memo.insert(k, v);
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let v = self.top(at)?.clone();
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    let v = self.top(at)?.clone();
                    self.memo.insert(k, v);
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    let v = self.top(at)?.clone();
                    self.memo.insert(k, v);
                }
                b'g' | b'h' | b'j' => {
                    let k = match op {
                        b'g' => self.line()?.trim().parse().or_else(|_| self.err(at, "bad GET"))?,
                        b'h' => self.u8()? as u64,
                        _ => self.u32()? as u64,
                    };
                    let v = self
                        .memo
                        .get(&k)
                        .cloned()
                        .ok_or(PickleError { offset: at as u64, message: format!("memo key {k} undefined") })?;
                    self.push(v)?
                }
                other => return self.err(at, format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

fn pairs(items: Vec<Py>) -> Option<Vec<(Py, Py)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut it = items.into_iter();
    let mut out = vec![];
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Some(out)
}

/// Bytes held by a value: bytes, or a latin-1 string (how Python 3 pickles Python 2 `str`
/// through `_codecs.encode(s, "latin1")`).
fn raw_bytes(v: &Py) -> Option<Rc<Vec<u8>>> {
    match v {
        Py::Bytes(b) => Some(b.clone()),
        Py::Str(s) => s.chars().map(|c| u8::try_from(c as u32).ok()).collect::<Option<Vec<u8>>>().map(Rc::new),
        Py::Object(o) => {
            let o = o.borrow();
            if o.callable.global_name().as_deref() == Some("_codecs.encode") {
                // The latin-1 text itself, not another encoded value (no recursion on input).
                match o.args.items()?.first()? {
                    Py::Str(_) | Py::Bytes(_) => o.args.items()?.first().and_then(raw_bytes),
                    _ => None,
                }
            } else {
                None
            }
        }
        _ => None,
    }
}

fn dtype_is_u8(d: &Py) -> bool {
    match d {
        Py::Object(o) => {
            let o = o.borrow();
            let name = o.args.items().and_then(|a| a.first().and_then(Py::as_key)).unwrap_or_default();
            o.callable.global_name().is_some_and(|g| g.ends_with(".dtype")) && (name == "u1" || name == "uint8")
        }
        _ => false,
    }
}

fn shape_of(v: &Py) -> Option<Vec<usize>> {
    v.items()?.iter().map(|x| x.as_int().and_then(|i| usize::try_from(i).ok())).collect()
}

/// A C-ordered uint8 numpy array: (shape, bytes). `Err` says why the value is not one.
pub fn ndarray_u8(v: &Py) -> Result<(Vec<usize>, Rc<Vec<u8>>)> {
    let Py::Object(o) = v else {
        return Err("not a numpy array".into());
    };
    let o = o.borrow();
    let callable = o.callable.global_name().unwrap_or_default();
    let (shape, dtype, fortran, data) = if callable.ends_with("multiarray._reconstruct") {
        // state = (version, shape, dtype, is_fortran, rawdata)
        let st = o.state.as_ref().and_then(Py::items).ok_or("numpy array without state")?;
        if st.len() != 5 {
            return Err(format!("numpy array state has {} fields, expected 5", st.len()).into());
        }
        (st[1].clone(), st[2].clone(), matches!(st[3], Py::Bool(true)), st[4].clone())
    } else if callable.ends_with("numeric._frombuffer") {
        // args = (buffer, dtype, shape, order)
        let a = o.args.items().ok_or("bad _frombuffer arguments")?;
        if a.len() != 4 {
            return Err("bad _frombuffer arguments".into());
        }
        (a[2].clone(), a[1].clone(), a[3].as_key().as_deref() == Some("F"), a[0].clone())
    } else {
        return Err(format!("`{callable}` is not a numpy array constructor").into());
    };
    if !dtype_is_u8(&dtype) {
        return Err("numpy array is not uint8".into());
    }
    if fortran {
        return Err("Fortran-ordered numpy arrays are not supported".into());
    }
    let shape = shape_of(&shape).ok_or("bad numpy shape")?;
    let data = raw_bytes(&data).ok_or("numpy array data is not bytes")?;
    let n: usize = shape.iter().product();
    if data.len() != n {
        return Err(format!("numpy array of shape {shape:?} holds {} bytes, expected {n}", data.len()).into());
    }
    Ok((shape, data))
}

/// Writers producing the exact byte layout of real files, for tests of the readers.
pub mod write {
    /// A Python 2 cPickle protocol-2 dict, as in `cifar-10-batches-py/data_batch_N`:
    /// byte-string keys, a uint8 ndarray via `numpy.core.multiarray._reconstruct`, int lists.
    pub fn cifar_batch_py2(
        label_key: &str,
        labels: &[u8],
        extra_labels: Option<(&str, &[u8])>,
        data: &[u8],
        rows: usize,
    ) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 1, b'('];
        let mut memo = 2u8;
        let mut put = |p: &mut Vec<u8>| {
            p.extend([b'q', memo]);
            memo = memo.wrapping_add(1);
        };
        // 'data': ndarray
        short_str(&mut p, "data");
        put(&mut p);
        p.extend(b"cnumpy.core.multiarray\n_reconstruct\n");
        put(&mut p);
        p.extend(b"cnumpy\nndarray\n");
        put(&mut p);
        p.extend([b'K', 0, 0x85]);
        short_str(&mut p, "b");
        p.extend([0x87, b'R']);
        put(&mut p);
        p.extend([b'(', b'K', 1]);
        int(&mut p, rows as u32);
        int(&mut p, (data.len() / rows.max(1)) as u32);
        p.push(0x86);
        p.extend(b"cnumpy\ndtype\n");
        put(&mut p);
        short_str(&mut p, "u1");
        p.extend([b'K', 0, b'K', 1, 0x87, b'R']);
        put(&mut p);
        p.extend([b'(', b'K', 3]);
        short_str(&mut p, "|");
        p.extend([b'N', b'N', b'N', b'J']);
        p.extend((-1i32).to_le_bytes());
        p.push(b'J');
        p.extend((-1i32).to_le_bytes());
        p.extend([b'K', 0, b't', b'b', 0x89, b'T']);
        p.extend((data.len() as u32).to_le_bytes());
        p.extend(data);
        p.extend([b't', b'b']);
        // label lists
        for (key, vals) in std::iter::once((label_key, labels)).chain(extra_labels) {
            short_str(&mut p, key);
            put(&mut p);
            p.extend([b']', b'q', 0xff, b'(']);
            for &v in vals {
                p.extend([b'K', v]);
            }
            p.push(b'e');
        }
        short_str(&mut p, "batch_label");
        short_str(&mut p, "training batch 1 of 5");
        p.extend([b'u', b'.']);
        p
    }

    /// A Python 2 protocol-2 `meta` dict with one list of names.
    pub fn names_py2(key: &str, names: &[&str]) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 1, b'('];
        short_str(&mut p, key);
        p.extend([b']', b'q', 2, b'(']);
        for n in names {
            short_str(&mut p, n);
        }
        p.extend([b'e', b'u', b'.']);
        p
    }

    fn short_str(p: &mut Vec<u8>, s: &str) {
        p.push(b'U');
        p.push(s.len() as u8);
        p.extend(s.as_bytes());
    }

    fn int(p: &mut Vec<u8>, v: u32) {
        if v < 256 {
            p.extend([b'K', v as u8]);
        } else if v < 65536 {
            p.push(b'M');
            p.extend((v as u16).to_le_bytes());
        } else {
            p.push(b'J');
            p.extend(v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_py2_cifar_layout() {
        let data: Vec<u8> = (0..3 * 3072).map(|i| (i % 251) as u8).collect();
        let bytes = write::cifar_batch_py2("labels", &[3, 1, 4], None, &data, 3);
        let v = load(&bytes).unwrap();
        let (shape, d) = ndarray_u8(&v.get("data").unwrap()).unwrap();
        assert_eq!(shape, vec![3, 3072]);
        assert_eq!(*d, data);
        let labels: Vec<i64> = v.get("labels").unwrap().items().unwrap().iter().map(|x| x.as_int().unwrap()).collect();
        assert_eq!(labels, vec![3, 1, 4]);
    }

    #[test]
    fn reads_numpy_pickles_of_protocols_2_4_5() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cifar-py");
        let expected = std::fs::read(fixtures.join("expected_data.bin")).unwrap();
        for proto in [2, 4, 5] {
            let bytes = std::fs::read(fixtures.join(format!("numpy_protocol{proto}.pkl"))).unwrap();
            let v = load(&bytes).unwrap_or_else(|e| panic!("protocol {proto}: {e:?}"));
            let (shape, d) = ndarray_u8(&v.get("data").unwrap()).unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
            assert_eq!(shape, vec![4, 3072], "protocol {proto}");
            assert_eq!(*d, expected, "protocol {proto}");
            let labels: Vec<i64> =
                v.get("labels").unwrap().items().unwrap().iter().map(|x| x.as_int().unwrap()).collect();
            assert_eq!(labels, vec![3, 8, 8, 0], "protocol {proto}");
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors_with_offsets() {
        let data = vec![7u8; 2 * 3072];
        let bytes = write::cifar_batch_py2("labels", &[0, 1], None, &data, 2);
        let e = load(&bytes[..bytes.len() - 100]).unwrap_err();
        assert!(e.message.contains("truncated"), "{e:?}");
        let e = load(b"\x80\x02\xff").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("unsupported pickle opcode 0xff"));
        assert!(load(b"\x80\x02.").is_err()); // STOP on empty stack
    }

    #[test]
    fn values_nested_200k_deep_load_and_drop_without_recursion() {
        let n = 200_000;
        // Lists appended into one another: `]` × n, then APPEND × (n - 1).
        let mut lists = b"\x80\x02".to_vec();
        lists.extend(std::iter::repeat_n(b']', n));
        lists.extend(std::iter::repeat_n(b'a', n - 1));
        lists.push(b'.');
        // One list wrapped in n one-tuples, and n nested `_codecs.encode` calls.
        let mut tuples = b"\x80\x02]".to_vec();
        tuples.extend(std::iter::repeat_n(0x85u8, n));
        tuples.push(b'.');
        let mut objects = b"\x80\x02".to_vec();
        for _ in 0..n {
            objects.extend(b"c_codecs\nencode\n");
            objects.push(b'(');
        }
        objects.extend(b"U\x01x");
        for _ in 0..n {
            objects.extend(b"tR");
        }
        objects.push(b'.');
        // A test thread's stack is 2 MiB: a recursive drop of 200k levels would overflow it.
        for (what, bytes) in [("lists", lists), ("tuples", tuples), ("objects", objects)] {
            let v = load(&bytes).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert!(v.get("data").is_none(), "{what}");
            assert!(v.as_key().is_none(), "{what}: only latin-1 text is read as a key, not nested calls");
            drop(v);
        }
    }
}
