//! Execution providers on this GPU-less machine: a requested GPU provider is an error, never a
//! silent CPU run, unless `allow_cpu_fallback`. Run both without and with the `cuda`/`tensorrt`
//! features (`make test` does both); with them the provider is registered and ONNX Runtime's
//! CPU-only library refuses it.

use std::path::PathBuf;

use pipeline_seg::engine::model::{Device, Model, ModelOptions};
use pipeline_seg::Error;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/pipeline_seg_unet.onnx")
}

fn load(device: Device, allow_cpu_fallback: bool) -> Result<Model, Error> {
    Model::load(&shipped(), &ModelOptions { device, allow_cpu_fallback, ..ModelOptions::default() })
}

#[test]
fn gpu_providers_are_refused_without_fallback() {
    for device in [Device::Cuda, Device::TensorRt] {
        match load(device, false) {
            Err(Error::Provider { device: name, detail }) => {
                assert_eq!(name, device.name());
                let built_with = cfg!(feature = "cuda") || cfg!(feature = "tensorrt");
                if !built_with {
                    assert!(detail.contains("feature"), "{detail}");
                }
            }
            Err(other) => panic!("{device:?}: expected a provider error, got {other}"),
            // A machine with a GPU and onnxruntime-gpu may load it; then it must say so.
            Ok(model) => assert_ne!(model.execution_provider, "CPUExecutionProvider", "{device:?} ran on CPU silently"),
        }
    }
}

#[test]
fn gpu_providers_fall_back_to_cpu_only_when_allowed() {
    let model = load(Device::Cuda, true).expect("allowed fallback loads");
    if !std::path::Path::new("/dev/nvidiactl").exists() {
        assert_eq!(model.execution_provider, "CPUExecutionProvider");
    }
}

#[test]
fn cpu_provider_is_reported() {
    assert_eq!(load(Device::Cpu, false).expect("cpu loads").execution_provider, "CPUExecutionProvider");
}
