//! [`ShareableList`]: Python's `multiprocessing.shared_memory.ShareableList`, a
//! fixed-length list of numbers, bools, strings and bytes in a named segment.
//!
//! Layout of the data part of the segment (after the named header, see
//! [`SharedMemory`]):
//!
//! | offset | what |
//! |---|---|
//! | 0 | a robust [`RawMutex`] that every get and set takes |
//! | M | the index + 1 of the slot being written, or 0 (`u32`); the number of items (`u32`) |
//! | M + 8 | one entry per item: its type and capacity in bytes (`u32` each) |
//! | after | the slots, each 8-aligned: 8 bytes for a number or bool; for a string or bytes, its length (`u32`, padded to 8) then `capacity` bytes |
//!
//! The table is fixed at creation, read once on open and checked against the segment's
//! size, so every later access stays inside the segment whatever is written to it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use multiproc_sync::{LockError, LockGuard, RawMutex};
use multiproc_sys::mapping;
use multiproc_sys::named_shm::NamedSegment;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SharedMemory;
use crate::error::{CreateError, ListError, OpenError, UnlinkError};
use crate::shared_memory::{DATA, NamedKind};

/// The largest capacity of a string or bytes slot, in bytes.
pub const MAX_SLOT_CAPACITY: usize = 1 << 20;

/// The largest number of items in a [`ShareableList`].
pub const MAX_ITEMS: usize = 1 << 20;

const MUTEX: usize = DATA;
const WRITING: usize = DATA + (size_of::<RawMutex>().div_ceil(8) * 8);
const COUNT: usize = WRITING + 4;
const TABLE: usize = WRITING + 8;

/// One item of a [`ShareableList`] (Python: `int`, `float`, `bool`, `str`, `bytes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string of at most the slot's capacity in bytes.
    Str(String),
    /// Bytes, at most the slot's capacity.
    Bytes(Vec<u8>),
}

/// The type of a [`ShareableList`] slot, fixed when the list is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemType {
    /// [`Item::Int`].
    Int = 1,
    /// [`Item::Float`].
    Float = 2,
    /// [`Item::Bool`].
    Bool = 3,
    /// [`Item::Str`].
    Str = 4,
    /// [`Item::Bytes`].
    Bytes = 5,
}

impl ItemType {
    fn from_u32(v: u32) -> Option<ItemType> {
        [ItemType::Int, ItemType::Float, ItemType::Bool, ItemType::Str, ItemType::Bytes]
            .into_iter()
            .find(|t| *t as u32 == v)
    }

    fn is_sized(self) -> bool {
        matches!(self, ItemType::Str | ItemType::Bytes)
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemType::Int => "int",
            ItemType::Float => "float",
            ItemType::Bool => "bool",
            ItemType::Str => "str",
            ItemType::Bytes => "bytes",
        })
    }
}

impl Item {
    /// The item's type.
    pub fn item_type(&self) -> ItemType {
        match self {
            Item::Int(_) => ItemType::Int,
            Item::Float(_) => ItemType::Float,
            Item::Bool(_) => ItemType::Bool,
            Item::Str(_) => ItemType::Str,
            Item::Bytes(_) => ItemType::Bytes,
        }
    }

    /// The length in bytes of a string or bytes item; 0 for the others.
    fn byte_len(&self) -> usize {
        match self {
            Item::Str(s) => s.len(),
            Item::Bytes(b) => b.len(),
            _ => 0,
        }
    }

    fn empty(t: ItemType) -> Item {
        match t {
            ItemType::Int => Item::Int(0),
            ItemType::Float => Item::Float(0.0),
            ItemType::Bool => Item::Bool(false),
            ItemType::Str => Item::Str(String::new()),
            ItemType::Bytes => Item::Bytes(Vec::new()),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(v) => write!(f, "{v}"),
            Item::Float(v) => write!(f, "{v:?}"),
            Item::Bool(v) => f.write_str(if *v { "True" } else { "False" }),
            Item::Str(s) => write!(f, "{s:?}"),
            Item::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
        }
    }
}

macro_rules! item_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Item {
            fn from($v: $t) -> Item {
                $e
            }
        }
    )*};
}

item_from!(
    i64 => |v| Item::Int(v),
    i32 => |v| Item::Int(v.into()),
    u32 => |v| Item::Int(v.into()),
    f64 => |v| Item::Float(v),
    bool => |v| Item::Bool(v),
    String => |v| Item::Str(v),
    &str => |v| Item::Str(v.to_owned()),
    Vec<u8> => |v| Item::Bytes(v),
    &[u8] => |v| Item::Bytes(v.to_vec()),
);

impl<const N: usize> From<&[u8; N]> for Item {
    fn from(v: &[u8; N]) -> Item {
        Item::Bytes(v.to_vec())
    }
}

/// One slot: its type, capacity (strings and bytes) and offset in the segment.
#[derive(Debug, Clone, Copy)]
struct Slot {
    ty: ItemType,
    capacity: usize,
    offset: usize,
}

impl Slot {
    fn size(&self) -> usize {
        if self.ty.is_sized() { 8 + self.capacity } else { 8 }
    }
}

/// Offsets for a table of `(type, capacity)`; `None` if it overflows.
fn lay_out(spec: impl Iterator<Item = (ItemType, usize)>, count: usize) -> Option<(Vec<Slot>, usize)> {
    let mut offset = TABLE.checked_add(count.checked_mul(8)?)?;
    let mut slots = Vec::with_capacity(count);
    for (ty, capacity) in spec {
        let slot = Slot { ty, capacity, offset };
        offset = offset.checked_add(slot.size())?;
        slots.push(slot);
    }
    Some((slots, offset))
}

/// A fixed-length list of numbers, bools, strings and bytes in a named segment, for
/// unrelated processes (Python's `multiprocessing.shared_memory.ShareableList`).
///
/// Each slot keeps the type it was created with: setting an `int` slot to a string is
/// [`ListError::WrongType`], not a silent change. A string or bytes slot holds at most
/// its capacity, fixed at creation: the item's length rounded up to 8 bytes (at least
/// 8), or more with [`create_with_capacity`](ShareableList::create_with_capacity).
///
/// Unlike Python's, gets and sets never see a half-written item: every access takes a
/// robust lock inside the segment (a few tens of nanoseconds when uncontended). If a
/// process dies in the middle of a set, the next access repairs that one slot by
/// resetting it to its type's empty value (`0`, `0.0`, `false`, `""`, `b""`); the other
/// slots keep their values.
///
/// Creating, opening, naming, ownership and cleanup work as for [`SharedMemory`]
/// (the same rules: the creator owns the name and unlinks it on drop unless
/// [`persist`](ShareableList::persist) was called; [`open`](ShareableList::open) never
/// unlinks), and [`shm`](ShareableList::shm) gives the segment underneath.
///
/// ```
/// use multiproc_shared::{Item, ShareableList};
///
/// # let name = format!("doc-list-{}", std::process::id());
/// let list = ShareableList::create(&name, &[1.into(), 2.5.into(), true.into(), "howdy".into(), b"HoWdY".into()])?;
///
/// let other = ShareableList::open(&name)?;          // e.g. in another program
/// assert_eq!(other.get_str(3)?, "howdy");
/// other.set(0, 42)?;
/// other.set(3, "hi")?;
/// assert!(other.set(3, "far too long for this slot").is_err()); // capacity 8
/// assert!(other.set(0, "not an int").is_err());                  // slots keep their type
///
/// assert_eq!(list.get(0)?, Item::Int(42));
/// assert_eq!(list.to_vec()?[3], Item::Str("hi".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ShareableList {
    shm: SharedMemory,
    slots: Arc<[Slot]>,
}

impl ShareableList {
    /// Creates the list `name` holding `items`; the handle owns the name (see
    /// [`SharedMemory`]). String and bytes slots get the item's length rounded up to 8.
    pub fn create(name: &str, items: &[Item]) -> Result<ShareableList, CreateError> {
        ShareableList::create_with_capacity(name, items, 0)
    }

    /// Like [`create`](ShareableList::create), with every string and bytes slot holding
    /// at least `capacity` bytes (rounded up to 8), so longer values can be set later.
    pub fn create_with_capacity(name: &str, items: &[Item], capacity: usize) -> Result<ShareableList, CreateError> {
        if items.len() > MAX_ITEMS {
            return Err(CreateError::TooManyItems { count: items.len(), max: MAX_ITEMS });
        }
        let capacity = capacity.min(MAX_SLOT_CAPACITY);
        let mut spec = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let len = item.byte_len();
            if len > MAX_SLOT_CAPACITY {
                return Err(CreateError::ItemTooLong { index, len, max: MAX_SLOT_CAPACITY });
            }
            let cap = if item.item_type().is_sized() { len.max(capacity).max(1).div_ceil(8) * 8 } else { 0 };
            spec.push((item.item_type(), cap));
        }
        // Cannot overflow: at most 2^20 slots of at most 2^20 + 8 bytes each.
        let (slots, end) = lay_out(spec.into_iter(), items.len()).ok_or(CreateError::TooLarge { size: u64::MAX })?;
        let init = |seg: &NamedSegment| -> std::io::Result<()> {
            multiproc_sys::robust::check_current_thread()?;
            // SAFETY: MUTEX is inside the fresh segment and 8-aligned; nobody can use the
            // lock before the header is published (openers check the magic first), and
            // a RawMutex is only mutated through its synchronising methods.
            let mutex = unsafe { mapping::place::<RawMutex>(seg, MUTEX) }?;
            // SAFETY: zeroed memory that no other process uses yet (see above).
            unsafe { mutex.init() }?;
            mapping::atomic::<AtomicU32>(seg, COUNT)?.store(items.len() as u32, Ordering::Relaxed);
            for (i, (slot, item)) in slots.iter().zip(items).enumerate() {
                let entry = TABLE + i * 8;
                mapping::atomic::<AtomicU32>(seg, entry)?.store(slot.ty as u32, Ordering::Relaxed);
                mapping::atomic::<AtomicU32>(seg, entry + 4)?.store(slot.capacity as u32, Ordering::Relaxed);
                write_slot(seg, slot, item)?;
            }
            Ok(())
        };
        let shm = SharedMemory::create_kind(name, end - DATA, NamedKind::List, init)?;
        Ok(ShareableList { shm, slots: slots.into() })
    }

    /// Creates a list under a fresh random name; read it back with
    /// [`name`](ShareableList::name).
    pub fn create_unique(items: &[Item]) -> Result<ShareableList, CreateError> {
        let mut attempts = 0;
        loop {
            match ShareableList::create(&crate::name::random_name(), items) {
                Err(CreateError::AlreadyExists { .. }) if attempts < 16 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Opens the existing list `name` (Python: `ShareableList(name=name)`). The handle
    /// never unlinks the name.
    pub fn open(name: &str) -> Result<ShareableList, OpenError> {
        ShareableList::from_shm(SharedMemory::open_kind(name, NamedKind::List)?)
    }

    /// Reads and checks the table of slots.
    fn from_shm(shm: SharedMemory) -> Result<ShareableList, OpenError> {
        let corrupt = |what: String| OpenError::Corrupt { name: shm.name().to_owned(), what };
        let seg = shm.segment();
        let word = |off| {
            mapping::atomic::<AtomicU32>(seg, off)
                .map(|a| a.load(Ordering::Relaxed) as usize)
                .map_err(|_| corrupt(format!("table entry at byte {off} lies outside the segment")))
        };
        let count = word(COUNT)?;
        if count > MAX_ITEMS {
            return Err(corrupt(format!("{count} items")));
        }
        let mut spec = Vec::with_capacity(count);
        for i in 0..count {
            let ty = word(TABLE + i * 8)?;
            let ty = ItemType::from_u32(ty as u32).ok_or_else(|| corrupt(format!("item {i} has unknown type {ty}")))?;
            let capacity = word(TABLE + i * 8 + 4)?;
            let cap_ok = if ty.is_sized() { capacity <= MAX_SLOT_CAPACITY && capacity % 8 == 0 } else { capacity == 0 };
            if !cap_ok {
                return Err(corrupt(format!("item {i} has capacity {capacity}")));
            }
            spec.push((ty, capacity));
        }
        let laid = lay_out(spec.into_iter(), count).filter(|(_, end)| *end <= DATA + shm.size());
        let (slots, _) = laid.ok_or_else(|| corrupt("the items do not fit the segment".to_owned()))?;
        multiproc_sys::robust::check_current_thread()
            .map_err(|e| OpenError::Os { name: shm.name().to_owned(), source: e })?;
        Ok(ShareableList { shm, slots: slots.into() })
    }

    /// The number of items (fixed at creation).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The name, as given.
    pub fn name(&self) -> &str {
        self.shm.name()
    }

    /// The segment underneath (Python: `shm`).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Whether this handle unlinks the name when its last clone is dropped (see
    /// [`SharedMemory::is_owner`]).
    pub fn is_owner(&self) -> bool {
        self.shm.is_owner()
    }

    /// Keeps the list after this handle is dropped (see [`SharedMemory::persist`]).
    pub fn persist(&self) {
        self.shm.persist();
    }

    /// Removes the name now (see [`SharedMemory::unlink`]).
    pub fn unlink(&self) -> Result<(), UnlinkError> {
        self.shm.unlink()
    }

    /// The type of item `index`, or `None` past the end.
    pub fn item_type(&self, index: usize) -> Option<ItemType> {
        self.slots.get(index).map(|s| s.ty)
    }

    /// The capacity in bytes of string or bytes item `index` (0 for the other types),
    /// or `None` past the end.
    pub fn capacity(&self, index: usize) -> Option<usize> {
        self.slots.get(index).map(|s| s.capacity)
    }

    fn slot(&self, index: usize) -> Result<Slot, ListError> {
        self.slots.get(index).copied().ok_or(ListError::IndexOutOfRange { index, len: self.slots.len() })
    }

    /// Runs `f` with the list's lock held, repairing first if a holder died mid-set.
    fn locked<R>(&self, f: impl FnOnce(&NamedSegment) -> Result<R, ListError>) -> Result<R, ListError> {
        let seg = self.shm.segment();
        // SAFETY: the creator initialised a RawMutex at MUTEX before publishing the
        // header (checked on open); it is only used through its synchronising methods,
        // and the mapping lives as long as `self`. `place` checks bounds and alignment.
        let mutex = unsafe { mapping::place::<RawMutex>(seg, MUTEX) }.map_err(ListError::Lock)?;
        let guard = match LockGuard::lock(mutex) {
            Ok(g) => g,
            Err(LockError::OwnerDied(g)) => {
                self.repair(seg)?;
                g.mark_consistent();
                g
            }
            Err(LockError::Deadlock) => {
                return Err(ListError::Lock(std::io::Error::other("the lock is already held by this thread")));
            }
            Err(LockError::Os(e)) => return Err(ListError::Lock(e)),
        };
        let result = f(seg);
        drop(guard);
        result
    }

    /// Resets the slot a dead holder was writing, if any.
    fn repair(&self, seg: &NamedSegment) -> Result<(), ListError> {
        let writing = mapping::atomic::<AtomicU32>(seg, WRITING).map_err(ListError::Lock)?;
        let w = writing.load(Ordering::Relaxed) as usize;
        if let Some(slot) = w.checked_sub(1).and_then(|i| self.slots.get(i)) {
            write_slot(seg, slot, &Item::empty(slot.ty)).map_err(ListError::Lock)?;
        }
        writing.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// A copy of item `index` (Python: `sl[i]`).
    pub fn get(&self, index: usize) -> Result<Item, ListError> {
        let slot = self.slot(index)?;
        self.locked(|seg| read_slot(seg, index, &slot))
    }

    fn get_typed<T>(&self, index: usize, ty: ItemType, unwrap: impl FnOnce(Item) -> Option<T>) -> Result<T, ListError> {
        let slot = self.slot(index)?;
        if slot.ty != ty {
            return Err(ListError::WrongType { index, expected: ty, found: slot.ty });
        }
        let item = self.locked(|seg| read_slot(seg, index, &slot))?;
        unwrap(item).ok_or(ListError::Corrupt { index, what: "the slot changed type" })
    }

    /// Item `index` as an integer ([`ListError::WrongType`] if it is not one).
    pub fn get_int(&self, index: usize) -> Result<i64, ListError> {
        self.get_typed(index, ItemType::Int, |i| if let Item::Int(v) = i { Some(v) } else { None })
    }

    /// Item `index` as a float.
    pub fn get_float(&self, index: usize) -> Result<f64, ListError> {
        self.get_typed(index, ItemType::Float, |i| if let Item::Float(v) = i { Some(v) } else { None })
    }

    /// Item `index` as a bool.
    pub fn get_bool(&self, index: usize) -> Result<bool, ListError> {
        self.get_typed(index, ItemType::Bool, |i| if let Item::Bool(v) = i { Some(v) } else { None })
    }

    /// Item `index` as a string.
    pub fn get_str(&self, index: usize) -> Result<String, ListError> {
        self.get_typed(index, ItemType::Str, |i| if let Item::Str(v) = i { Some(v) } else { None })
    }

    /// Item `index` as bytes.
    pub fn get_bytes(&self, index: usize) -> Result<Vec<u8>, ListError> {
        self.get_typed(index, ItemType::Bytes, |i| if let Item::Bytes(v) = i { Some(v) } else { None })
    }

    /// Replaces item `index` (Python: `sl[i] = value`). The value must have the slot's
    /// type ([`ListError::WrongType`]) and fit its capacity ([`ListError::TooLong`]);
    /// otherwise nothing changes.
    pub fn set(&self, index: usize, value: impl Into<Item>) -> Result<(), ListError> {
        let value = value.into();
        let slot = self.slot(index)?;
        if value.item_type() != slot.ty {
            return Err(ListError::WrongType { index, expected: value.item_type(), found: slot.ty });
        }
        if value.byte_len() > slot.capacity {
            return Err(ListError::TooLong { index, len: value.byte_len(), capacity: slot.capacity });
        }
        self.locked(|seg| {
            // Announce the slot first: if we die mid-write, the next locker resets it.
            let writing = mapping::atomic::<AtomicU32>(seg, WRITING).map_err(ListError::Lock)?;
            writing.store(index as u32 + 1, Ordering::Relaxed);
            let written = write_slot(seg, &slot, &value);
            writing.store(0, Ordering::Relaxed);
            written.map_err(ListError::Lock)
        })
    }

    /// A copy of every item, taken under one lock (a consistent snapshot).
    pub fn to_vec(&self) -> Result<Vec<Item>, ListError> {
        self.locked(|seg| self.slots.iter().enumerate().map(|(i, s)| read_slot(seg, i, s)).collect())
    }

    /// How many items equal `value` (Python: `count`).
    pub fn count(&self, value: &Item) -> Result<usize, ListError> {
        Ok(self.to_vec()?.iter().filter(|i| *i == value).count())
    }

    /// The position of the first item equal to `value` (Python: `index`, which raises
    /// where this returns `None`).
    pub fn index(&self, value: &Item) -> Result<Option<usize>, ListError> {
        Ok(self.to_vec()?.iter().position(|i| i == value))
    }
}

fn write_slot(seg: &NamedSegment, slot: &Slot, item: &Item) -> std::io::Result<()> {
    match item {
        Item::Int(v) => mapping::write(seg, slot.offset, &v.to_ne_bytes()),
        Item::Float(v) => mapping::write(seg, slot.offset, &v.to_ne_bytes()),
        Item::Bool(v) => mapping::write(seg, slot.offset, &u64::from(*v).to_ne_bytes()),
        Item::Str(s) => write_sized(seg, slot, s.as_bytes()),
        Item::Bytes(b) => write_sized(seg, slot, b),
    }
}

fn write_sized(seg: &NamedSegment, slot: &Slot, bytes: &[u8]) -> std::io::Result<()> {
    mapping::write(seg, slot.offset + 8, bytes)?;
    mapping::write(seg, slot.offset, &(bytes.len() as u32).to_ne_bytes())
}

fn read_slot(seg: &NamedSegment, index: usize, slot: &Slot) -> Result<Item, ListError> {
    let oob = |_| ListError::Corrupt { index, what: "the slot lies outside the segment" };
    let mut word = [0u8; 8];
    mapping::read(seg, slot.offset, &mut word).map_err(oob)?;
    let as_u64 = u64::from_ne_bytes(word);
    Ok(match slot.ty {
        ItemType::Int => Item::Int(as_u64 as i64),
        ItemType::Float => Item::Float(f64::from_bits(as_u64)),
        ItemType::Bool => match as_u64 {
            0 => Item::Bool(false),
            1 => Item::Bool(true),
            _ => return Err(ListError::Corrupt { index, what: "a bool is neither 0 nor 1" }),
        },
        ItemType::Str | ItemType::Bytes => {
            let len = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]) as usize;
            if len > slot.capacity {
                return Err(ListError::Corrupt { index, what: "the length exceeds the capacity" });
            }
            let mut bytes = vec![0u8; len];
            mapping::read(seg, slot.offset + 8, &mut bytes).map_err(oob)?;
            if slot.ty == ItemType::Bytes {
                Item::Bytes(bytes)
            } else {
                Item::Str(String::from_utf8(bytes).map_err(|_| ListError::Corrupt { index, what: "invalid UTF-8" })?)
            }
        }
    })
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList").field("name", &self.name()).field("len", &self.len()).finish()
    }
}

/// Serialized like a [`SharedMemory`]: the received handle maps the same list and does
/// not own the name.
impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shm.serialize_kind(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let shm = SharedMemory::deserialize_kind(d, NamedKind::List)?;
        ShareableList::from_shm(shm).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_8_aligned_and_sized() {
        let (slots, end) =
            lay_out([(ItemType::Int, 0), (ItemType::Str, 16), (ItemType::Bool, 0)].into_iter(), 3).unwrap();
        assert_eq!(slots[0].offset, TABLE + 24);
        assert_eq!(slots[1].offset, slots[0].offset + 8);
        assert_eq!(slots[2].offset, slots[1].offset + 24);
        assert_eq!(end, slots[2].offset + 8);
        assert!(slots.iter().all(|s| s.offset % 8 == 0));
        assert_eq!(MUTEX % align_of::<RawMutex>(), 0);
    }

    #[test]
    fn a_holder_that_dies_mid_set_leaves_only_that_slot_reset() {
        let name = format!("unit-repair-{}", std::process::id());
        let list = ShareableList::create(&name, &["keep".into(), "torn".into(), 5.into()]).unwrap();
        let other = list.clone();
        // A thread that dies holding the lock in the middle of a set: a robust mutex
        // reports the death of its holder thread exactly as that of a process.
        std::thread::spawn(move || {
            let seg = other.shm.segment();
            // SAFETY: as in `locked`.
            let mutex = unsafe { mapping::place::<RawMutex>(seg, MUTEX) }.unwrap();
            let guard = LockGuard::lock(mutex).unwrap();
            mapping::atomic::<AtomicU32>(seg, WRITING).unwrap().store(2, Ordering::Relaxed);
            // Half a write: a length past the capacity, as a torn set could leave.
            mapping::write(seg, other.slots[1].offset, &1000u32.to_ne_bytes()).unwrap();
            std::mem::forget(guard);
        })
        .join()
        .unwrap();
        assert_eq!(list.to_vec().unwrap(), [Item::from("keep"), Item::from(""), Item::from(5)]);
        // Repaired and marked consistent: later accesses are plain.
        list.set(1, "new").unwrap();
        assert_eq!(list.get_str(1).unwrap(), "new");
    }

    #[test]
    fn items_display_like_python() {
        let shown: Vec<String> =
            [Item::from(1), 2.5.into(), true.into(), "a".into(), b"b".into()].iter().map(|i| i.to_string()).collect();
        assert_eq!(shown, ["1", "2.5", "True", "\"a\"", "b\"b\""]);
    }
}
