//! The facade's flat names and module paths are the same items as the crates' own.

use std::any::TypeId;

#[test]
fn flat_names_are_the_crate_types() {
    assert_eq!(TypeId::of::<multiproc::Process<u8>>(), TypeId::of::<multiproc_process::Process<u8>>());
    assert_eq!(TypeId::of::<multiproc::Process<u8>>(), TypeId::of::<multiproc::process::Process<u8>>());
    assert_eq!(TypeId::of::<multiproc::StartMethod>(), TypeId::of::<multiproc::process::StartMethod>());
    assert_eq!(TypeId::of::<multiproc::JoinError>(), TypeId::of::<multiproc_process::JoinError>());
    assert_eq!(TypeId::of::<multiproc::StartError>(), TypeId::of::<multiproc_process::StartError>());
    assert_eq!(TypeId::of::<multiproc::Context>(), TypeId::of::<multiproc_process::Context>());
    assert_eq!(TypeId::of::<multiproc::codec::Bincode>(), TypeId::of::<multiproc_codec::Bincode>());
    assert_eq!(TypeId::of::<multiproc::sys::shm::Segment>(), TypeId::of::<multiproc_sys::shm::Segment>());
    assert_eq!(TypeId::of::<multiproc::Lock>(), TypeId::of::<multiproc_sync::Lock>());
    assert_eq!(TypeId::of::<multiproc::Lock>(), TypeId::of::<multiproc::sync::Lock>());
    assert_eq!(TypeId::of::<multiproc::RLock>(), TypeId::of::<multiproc::sync::RLock>());
    assert_eq!(TypeId::of::<multiproc::Semaphore>(), TypeId::of::<multiproc::sync::Semaphore>());
    assert_eq!(TypeId::of::<multiproc::BoundedSemaphore>(), TypeId::of::<multiproc::sync::BoundedSemaphore>());
    assert_eq!(TypeId::of::<multiproc::Event>(), TypeId::of::<multiproc::sync::Event>());
    assert_eq!(TypeId::of::<multiproc::Condition>(), TypeId::of::<multiproc::sync::Condition>());
    assert_eq!(TypeId::of::<multiproc::Barrier>(), TypeId::of::<multiproc::sync::Barrier>());
    assert_eq!(TypeId::of::<multiproc::Future<u8>>(), TypeId::of::<multiproc::futures::Future<u8>>());
    assert_eq!(TypeId::of::<multiproc::ProcessPoolExecutor>(), TypeId::of::<multiproc::futures::ProcessPoolExecutor>());
    assert_eq!(TypeId::of::<multiproc::ThreadPoolExecutor>(), TypeId::of::<multiproc::futures::ThreadPoolExecutor>());
    assert_eq!(TypeId::of::<multiproc::ReturnWhen>(), TypeId::of::<multiproc::futures::ReturnWhen>());
    assert_eq!(TypeId::of::<multiproc::Manager>(), TypeId::of::<multiproc_manager::Manager>());
    assert_eq!(TypeId::of::<multiproc::Manager>(), TypeId::of::<multiproc::manager::Manager>());
    assert_eq!(
        TypeId::of::<multiproc::DictProxy<String, i64>>(),
        TypeId::of::<multiproc::manager::DictProxy<String, i64>>()
    );
    assert_eq!(TypeId::of::<multiproc::ListProxy<u8>>(), TypeId::of::<multiproc::manager::ListProxy<u8>>());
    assert_eq!(TypeId::of::<multiproc::ValueProxy<u8>>(), TypeId::of::<multiproc::manager::ValueProxy<u8>>());
    assert_eq!(TypeId::of::<multiproc::Pipe>(), TypeId::of::<multiproc_pipe::Pipe>());
    assert_eq!(TypeId::of::<multiproc::Connection>(), TypeId::of::<multiproc::pipe::Connection>());
    assert_eq!(TypeId::of::<multiproc::Listener>(), TypeId::of::<multiproc::pipe::Listener>());
    assert_eq!(TypeId::of::<multiproc::Client>(), TypeId::of::<multiproc::pipe::Client>());
    assert_eq!(TypeId::of::<multiproc::Address>(), TypeId::of::<multiproc::pipe::Address>());
    assert_eq!(TypeId::of::<multiproc::Queue<u8>>(), TypeId::of::<multiproc_queue::Queue<u8>>());
    assert_eq!(TypeId::of::<multiproc::Queue<u8>>(), TypeId::of::<multiproc::queue::Queue<u8>>());
    assert_eq!(TypeId::of::<multiproc::SimpleQueue<u8>>(), TypeId::of::<multiproc::queue::SimpleQueue<u8>>());
    assert_eq!(TypeId::of::<multiproc::JoinableQueue<u8>>(), TypeId::of::<multiproc::queue::JoinableQueue<u8>>());
    assert_eq!(TypeId::of::<multiproc::Value<u64>>(), TypeId::of::<multiproc_shared::Value<u64>>());
    assert_eq!(TypeId::of::<multiproc::Value<u64>>(), TypeId::of::<multiproc::shared::Value<u64>>());
    assert_eq!(TypeId::of::<multiproc::Array<u8>>(), TypeId::of::<multiproc::shared::Array<u8>>());
    assert_eq!(TypeId::of::<multiproc::RawValue<u8>>(), TypeId::of::<multiproc::shared::RawValue<u8>>());
    assert_eq!(TypeId::of::<multiproc::RawArray<u8>>(), TypeId::of::<multiproc::shared::RawArray<u8>>());
    assert_eq!(TypeId::of::<multiproc::SharedMemory>(), TypeId::of::<multiproc::shared::SharedMemory>());
    assert_eq!(TypeId::of::<multiproc::ShareableList>(), TypeId::of::<multiproc::shared::ShareableList>());
}

#[test]
fn flat_functions_are_the_crate_functions() {
    assert_eq!(multiproc::cpu_count(), multiproc_process::cpu_count());
    assert_eq!(multiproc::current_process(), multiproc::process::current_process());
    assert_eq!(multiproc::get_start_method(), multiproc_process::get_start_method());
}
