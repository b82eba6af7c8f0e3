//! The ONNX model: find ONNX Runtime, load, validate against the model contract, run.

use crate::engine::trust::TrustModel;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use ndarray::{ArrayView3, ArrayView4};
use ort::environment::Environment;
use ort::session::{builder::GraphOptimizationLevel, Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::engine::preprocess::{InputSpec, ResizeMode};
use crate::error::{Error, Result};

/// Where the ONNX Runtime library is looked for, in this order; the first place that holds one
/// is used (docs/interfaces.md §5):
///
/// 1. `explicit`: the `onnxruntime_lib` parameter (`--onnxruntime-lib`, launch argument);
/// 2. `ORT_DYLIB_PATH`;
/// 3. the install space: for each `AMENT_PREFIX_PATH` entry, and the install prefix of the running
///    executable (`<prefix>/lib/pipeline_seg/pipeline_seg_node`), `<prefix>/lib/libonnxruntime.so*`
///    and the `onnxruntime` Python package in `<prefix>/lib/python3*/{site,dist}-packages`;
/// 4. the source checkout's `.venv` ([`project_roots`]: `PIPELINE_SEG_ROOT`, the build's source
///    directory, the executable's ancestors), as `scripts/setup.sh` installs it;
/// 5. the `onnxruntime` Python package of the `python3` on `PATH` (`pip install onnxruntime`);
/// 6. the system library path: `LD_LIBRARY_PATH`, then the ldconfig cache and /usr/local/lib,
///    /usr/lib (and their multiarch directories).
///
/// Not found: the error names every place tried.
pub fn find_onnxruntime(explicit: Option<&Path>) -> Result<PathBuf> {
    OrtSearch::from_env(explicit).find().map(|(path, _)| path)
}

/// The places of [`find_onnxruntime`], filled from the environment or, in tests, by hand.
#[derive(Clone, Debug, Default)]
pub struct OrtSearch {
    /// The `onnxruntime_lib` parameter.
    pub explicit: Option<PathBuf>,
    /// `ORT_DYLIB_PATH`.
    pub env: Option<PathBuf>,
    /// Install prefixes: `AMENT_PREFIX_PATH` entries, then the executable's own prefix.
    pub prefixes: Vec<PathBuf>,
    /// Source checkouts whose `.venv` may hold the onnxruntime wheel.
    pub checkouts: Vec<PathBuf>,
    /// The Python interpreter asked where its `onnxruntime` package is (`None`: not asked).
    pub python3: Option<PathBuf>,
    /// `LD_LIBRARY_PATH` entries.
    pub ld_library_path: Vec<PathBuf>,
    /// `ldconfig -p` is asked (the system's library cache).
    pub ldconfig: bool,
    /// System library directories searched last.
    pub system_dirs: Vec<PathBuf>,
}

impl OrtSearch {
    /// The search as the running process sees it.
    pub fn from_env(explicit: Option<&Path>) -> OrtSearch {
        let var_paths = |name: &str| -> Vec<PathBuf> {
            std::env::var_os(name)
                .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
                .unwrap_or_default()
        };
        let mut prefixes = var_paths("AMENT_PREFIX_PATH");
        if let Some(prefix) = std::env::current_exe().ok().as_deref().and_then(install_prefix) {
            if !prefixes.contains(&prefix) {
                prefixes.push(prefix);
            }
        }
        let mut system_dirs: Vec<PathBuf> = Vec::new();
        for base in ["/usr/local/lib", "/usr/lib", "/lib"] {
            system_dirs.push(base.into());
            system_dirs.push(Path::new(base).join(format!("{}-linux-gnu", std::env::consts::ARCH)));
        }
        OrtSearch {
            explicit: explicit.filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf),
            env: std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from),
            prefixes,
            checkouts: project_roots(),
            python3: Some("python3".into()),
            ld_library_path: var_paths("LD_LIBRARY_PATH"),
            ldconfig: true,
            system_dirs,
        }
    }

    /// The library and where it was found; else an error naming every place tried.
    pub fn find(&self) -> Result<(PathBuf, String)> {
        if let Some(p) = &self.explicit {
            return Ok((p.clone(), "the onnxruntime_lib parameter".into()));
        }
        if let Some(p) = &self.env {
            return Ok((p.clone(), "ORT_DYLIB_PATH".into()));
        }
        let mut tried: Vec<String> =
            vec!["the onnxruntime_lib parameter (not set)".into(), "ORT_DYLIB_PATH (not set)".into()];
        let paths = |dirs: &[PathBuf]| -> String {
            if dirs.is_empty() {
                "none".into()
            } else {
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            }
        };
        // Searches `dirs`; if none holds the library, `tried` gets `what: shown`.
        let mut look = |dirs: &[PathBuf], what: &str, shown: String| -> Option<(PathBuf, String)> {
            let found =
                dirs.iter().find_map(|dir| newest_library(dir).map(|p| (p, format!("{what}, {}", dir.display()))));
            if found.is_none() {
                tried.push(format!("{what}: {shown}"));
            }
            found
        };
        // 3. The install space.
        let mut install = Vec::new();
        for prefix in &self.prefixes {
            install.push(prefix.join("lib"));
            install.extend(python_packages(&prefix.join("lib")));
            install.extend(python_packages(&prefix.join("local/lib")));
        }
        let shown = format!(
            "{} (each <prefix>/lib and <prefix>/lib/python3*/site-packages/onnxruntime/capi)",
            paths(&self.prefixes)
        );
        if let Some(found) = look(&install, "the install space (AMENT_PREFIX_PATH, the executable's prefix)", shown) {
            return Ok(found);
        }
        // 4. The source checkout's .venv.
        let venvs: Vec<PathBuf> =
            self.checkouts.iter().flat_map(|root| python_packages(&root.join(".venv/lib"))).collect();
        let shown = paths(&self.checkouts.iter().map(|r| r.join(".venv")).collect::<Vec<_>>());
        if let Some(found) = look(&venvs, "the source checkout's .venv", shown) {
            return Ok(found);
        }
        // 5. python3's onnxruntime package.
        let capi: Vec<PathBuf> = self.python3.as_deref().and_then(python_onnxruntime).into_iter().collect();
        let shown = match &self.python3 {
            Some(p) if capi.is_empty() => format!("{} has none", p.display()),
            Some(_) => paths(&capi),
            None => "not asked".into(),
        };
        if let Some(found) = look(&capi, "the onnxruntime Python package of python3", shown) {
            return Ok(found);
        }
        // 6. The system library path.
        if let Some(found) = look(&self.ld_library_path, "LD_LIBRARY_PATH", paths(&self.ld_library_path)) {
            return Ok(found);
        }
        let mut system: Vec<PathBuf> = if self.ldconfig { ldconfig_dirs() } else { Vec::new() };
        for d in &self.system_dirs {
            if !system.contains(d) {
                system.push(d.clone());
            }
        }
        let shown = format!("{}{}", if self.ldconfig { "ldconfig cache, " } else { "" }, paths(&system));
        if let Some(found) = look(&system, "the system library path", shown) {
            return Ok(found);
        }
        Err(Error::Runtime(format!(
            "libonnxruntime.so not found; tried, in order: {}. Set the onnxruntime_lib parameter (launch argument \
             onnxruntime_lib:=...) or ORT_DYLIB_PATH to the library, `pip install onnxruntime` for python3, or run \
             scripts/setup.sh in the source checkout",
            tried.join("; ")
        )))
    }
}

/// `<prefix>` of an executable installed as `<prefix>/lib/<package>/<exe>` (colcon, ament).
fn install_prefix(exe: &Path) -> Option<PathBuf> {
    let lib = exe.parent()?.parent()?;
    (lib.file_name()? == "lib").then(|| lib.parent().map(Path::to_path_buf)).flatten()
}

/// `onnxruntime/capi` of each Python under `lib` (`lib/python3.X/{site,dist}-packages`).
fn python_packages(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else { return Vec::new() };
    let mut pythons: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3")))
        .collect();
    pythons.sort();
    pythons
        .iter()
        .flat_map(|py| ["site-packages", "dist-packages"].map(|s| py.join(s).join("onnxruntime/capi")))
        .filter(|d| d.is_dir())
        .collect()
}

/// The ONNX Runtime library in `dir`: `libonnxruntime.so.<newest version>`, else `libonnxruntime.so`.
fn newest_library(dir: &Path) -> Option<PathBuf> {
    let files = std::fs::read_dir(dir).ok()?;
    let mut versioned: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    let mut plain = None;
    for f in files.flatten() {
        let name = f.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "libonnxruntime.so" {
            plain = Some(f.path());
        } else if let Some(version) = name.strip_prefix("libonnxruntime.so.") {
            let key = version.split('.').map(|n| n.parse().unwrap_or(0)).collect();
            versioned.push((key, f.path()));
        }
    }
    versioned.sort();
    versioned.pop().map(|(_, p)| p).or(plain).filter(|p| p.exists())
}

/// `onnxruntime/capi` of the package `python` would import (found, not imported: no library load).
fn python_onnxruntime(python: &Path) -> Option<PathBuf> {
    let code = "import importlib.util as u\ns = u.find_spec('onnxruntime')\n\
                print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = std::process::Command::new(python)
        .args(["-c", code])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (out.status.success() && !dir.is_empty()).then(|| Path::new(dir).join("capi"))
}

/// The directories of the ldconfig cache's `libonnxruntime.so*` entries.
fn ldconfig_dirs() -> Vec<PathBuf> {
    let run = |exe: &str| std::process::Command::new(exe).arg("-p").stderr(std::process::Stdio::null()).output().ok();
    let Some(out) = run("/sbin/ldconfig").or_else(|| run("/usr/sbin/ldconfig")).or_else(|| run("ldconfig")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if !line.starts_with("libonnxruntime.so") {
            continue;
        }
        if let Some(dir) =
            line.rsplit_once("=> ").and_then(|(_, p)| Path::new(p.trim()).parent().map(Path::to_path_buf))
        {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// The ONNX Runtime library this process loaded and where it was found, once a model loaded.
pub fn onnxruntime_library() -> Option<&'static str> {
    LIBRARY.get().map(String::as_str)
}

static LIBRARY: OnceLock<String> = OnceLock::new();
static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls reuse the first library.
fn environment(lib: &Path) -> Result<Environment> {
    ENV.get_or_init(|| {
        if !lib.exists() {
            return Err(format!("{} does not exist", lib.display()));
        }
        let builder = ort::init_from(lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
        builder.with_name("pipeline_seg").build().map_err(|e| format!("cannot create the environment: {e}"))
    })
    .clone()
    .map_err(Error::Runtime)
}

/// The execution provider that runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// The CUDA execution provider (`cuda` feature).
    Cuda,
    /// The TensorRT execution provider, CUDA behind it (`tensorrt` feature).
    TensorRt,
}

impl FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            "tensorrt" => Ok(Device::TensorRt),
            other => Err(Error::param("device", format!("'{other}' unknown; use cpu, cuda or tensorrt"))),
        }
    }
}

impl Device {
    /// The name used on the command line and in parameters.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::TensorRt => "tensorrt",
        }
    }
}

/// Gate defaults the model was calibrated with (docs/interfaces.md §1 metadata).
#[derive(Clone, Debug, PartialEq)]
pub struct GateDefaults {
    /// Metadata `score_method` (checked against the known methods when the settings are
    /// resolved by `engine::config`).
    pub score_method: String,
    /// Metadata `pixel_threshold`: entropy above which a pixel counts for `fraction_above`.
    pub pixel_threshold: f32,
    /// Metadata `band_px`: band for `pipeline_mean` [px at model resolution].
    pub band_px: u32,
    /// Metadata `threshold_high`: score above which a frame is uncertain.
    pub threshold_high: f32,
    /// Metadata `threshold_low`: score below which a frame counts towards recovery.
    pub threshold_low: f32,
    /// Metadata `recover_frames`: consecutive frames below `threshold_low` to be confident again.
    pub recover_frames: u32,
}

/// What the model's metadata and signature say about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Metadata `input_height`: model input height [px].
    pub height: usize,
    /// Metadata `input_width`: model input width [px].
    pub width: usize,
    /// Metadata `mean`: per-channel RGB mean on the 0..1 scale.
    pub mean: [f32; 3],
    /// Metadata `std`: per-channel RGB standard deviation on the 0..1 scale.
    pub std: [f32; 3],
    /// Metadata `resize`: `stretch` or `letterbox`.
    pub resize: ResizeMode,
    /// Metadata `dropout_p`: channel drop probability, 0..1.
    pub dropout_p: f32,
    /// Channel count of each dropout site, in input order (`dropout_mask_k`).
    pub dropout_sites: Vec<usize>,
    /// Metadata `dropout_placement`: where the dropout sites are (e.g. `bottleneck+decoder`).
    pub dropout_placement: String,
    /// Metadata `default_samples`: MC-Dropout samples T when none are set.
    pub default_samples: usize,
    /// Gate defaults calibrated on the validation split.
    pub gate: GateDefaults,
    /// Whether the graph has the optional output `feature_distance` (docs/interfaces.md §9).
    pub feature_distance: bool,
    /// The trust score's coefficients (metadata `trust_*`), if the model has them.
    pub trust: Option<TrustModel>,
}

impl ModelInfo {
    /// What the model wants as input.
    pub fn input(&self) -> InputSpec {
        InputSpec { width: self.width, height: self.height, mean: self.mean, std: self.std, resize: self.resize }
    }
}

/// Options for loading a model.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Execution provider to run the model on.
    pub device: Device,
    /// Run on CPU when the requested GPU provider cannot be used.
    pub allow_cpu_fallback: bool,
    /// Intra-op threads; 0 lets ONNX Runtime choose.
    pub intra_threads: usize,
    /// The ONNX Runtime library (libonnxruntime.so); `None` = the search of [`find_onnxruntime`].
    pub onnxruntime_lib: Option<PathBuf>,
    /// CUDA device of the GPU providers.
    pub gpu_device_id: u32,
    /// TensorRT builds fp16 engines.
    pub trt_fp16: bool,
    /// TensorRT engine and timing cache directory; `None` = [`default_trt_cache`].
    pub trt_cache_dir: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            device: Device::Cpu,
            allow_cpu_fallback: false,
            intra_threads: 0,
            onnxruntime_lib: None,
            gpu_device_id: 0,
            trt_fp16: false,
            trt_cache_dir: None,
        }
    }
}

/// `$XDG_CACHE_HOME/pipeline_seg/tensorrt`, else `~/.cache/pipeline_seg/tensorrt`: engines survive
/// restarts, so only the first start builds them.
pub fn default_trt_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("pipeline_seg").join("tensorrt")
}

/// How the samples run: the whole graph per chunk, or the trunk once and the head per chunk.
enum Graph {
    /// The main file: every chunk of samples runs the whole network.
    Whole(Session),
    /// `<stem>.trunk.onnx` once per frame, `<stem>.head.onnx` per chunk (training/split.py).
    Split {
        trunk: Session,
        head: Session,
        /// Trunk outputs the head reads, by name.
        cut: Vec<String>,
    },
    /// Between the whole graph and its split, while loading (one graph in memory at a time).
    Unloaded,
}

/// A loaded, validated model.
pub struct Model {
    graph: Graph,
    /// What the model's metadata and signature say.
    pub info: ModelInfo,
    /// The model file it was loaded from.
    pub path: PathBuf,
    /// The execution provider that runs the model (`CPUExecutionProvider`, ...).
    pub execution_provider: &'static str,
    /// Why the trunk/head split beside the model is not used (`None`: it is, or there is none).
    pub split_problem: Option<String>,
}

/// The trunk and head files the engine looks for beside `model` (`training/split.py` writes them).
pub fn split_paths(model: &Path) -> (PathBuf, PathBuf) {
    let name = model.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name.strip_suffix(".onnx").unwrap_or(name);
    (model.with_file_name(format!("{stem}.trunk.onnx")), model.with_file_name(format!("{stem}.head.onnx")))
}

impl Model {
    /// Loads the model and checks it against the contract; a mismatch names what differs.
    ///
    /// When `<stem>.trunk.onnx` and `<stem>.head.onnx` lie beside it and together give the
    /// model's own output (checked here on a fixed input), they run instead of the whole graph,
    /// so that the trunk runs once per frame however many chunks of samples follow.
    pub fn load(path: &Path, opts: &ModelOptions) -> Result<Model> {
        let model_err = |detail: String| Error::Model { path: path.to_path_buf(), detail };
        if !path.is_file() {
            return Err(model_err("file not found".into()));
        }
        let (lib, source) = OrtSearch::from_env(opts.onnxruntime_lib.as_deref()).find()?;
        let env = environment(&lib)?;
        let _ = LIBRARY.set(format!("{} (from {source})", lib.display()));
        // Said once per load, not per session (the model, its trunk and its head each get one).
        if cfg!(feature = "tensorrt") && opts.device == Device::TensorRt {
            let dir = opts.trt_cache_dir.clone().unwrap_or_else(default_trt_cache);
            eprintln!(
                "TensorRT: engines are built on the first start for this model, GPU and settings (this can take \
                 minutes) and cached in {}",
                dir.display()
            );
        }
        let (session, execution_provider) = open(&env, opts, path)?;
        let info = read_info(&session).map_err(model_err)?;
        check_signature(&session, &info).map_err(model_err)?;
        let mut model = Model {
            graph: Graph::Whole(session),
            info,
            path: path.to_path_buf(),
            execution_provider,
            split_problem: None,
        };
        let (trunk, head) = split_paths(path);
        if trunk.is_file() && head.is_file() {
            if let Err(why) = model.split_agrees(&env, opts, &trunk, &head) {
                model.split_problem = Some(format!("{}: {why}; running the whole graph", trunk.display()));
                if !matches!(model.graph, Graph::Whole(_)) {
                    model.graph = Graph::Whole(open(&env, opts, path)?.0);
                }
            }
        }
        Ok(model)
    }

    /// Whether the trunk and head beside the model are in use.
    pub fn is_split(&self) -> bool {
        matches!(self.graph, Graph::Split { .. })
    }

    /// Loads the trunk and head and checks them against the whole graph on a fixed input and
    /// fixed masks (T = 2, the split in two chunks; T = 3 grew the arenas by 30 MB): any difference
    /// above 1e-4 refuses them. The whole graph is dropped
    /// before the pair is opened, so the load's peak memory is that of one graph, not two; on
    /// an error the graph may be [`Graph::Unloaded`] (the caller reopens the whole graph).
    fn split_agrees(
        &mut self,
        env: &Environment,
        opts: &ModelOptions,
        trunk_path: &Path,
        head_path: &Path,
    ) -> std::result::Result<(), String> {
        let (h, w) = (self.info.height, self.info.width);
        let image = ndarray::Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
            ((x * 7 + y * 13 + c * 29) % 61) as f32 / 30.0 - 1.0
        });
        let t = 2;
        let mut rng = crate::engine::sampler::Sampler::new(7, self.info.dropout_p);
        let masks = rng.masks(&self.info.dropout_sites, t);
        let mut whole = Vec::new();
        let mut whole_fd = None;
        self.run_chunks(image.view(), &masks, [t], |p, fd| {
            whole.extend(p.iter().copied());
            whole_fd = fd;
            Ok(true)
        })
        .map_err(|e| e.to_string())?;
        self.graph = Graph::Unloaded;
        let (trunk, _) = open(env, opts, trunk_path).map_err(|e| e.to_string())?;
        let (head, _) = open(env, opts, head_path).map_err(|e| e.to_string())?;
        let n_masks = self.info.dropout_sites.len();
        let mut cut = Vec::new();
        for input in head.inputs() {
            let name = input.name();
            if name.starts_with("dropout_mask_") {
                continue;
            }
            if !trunk.outputs().iter().any(|o| o.name() == name) {
                return Err(format!("the head reads '{name}', which the trunk does not give"));
            }
            cut.push(name.to_string());
        }
        if head.inputs().len() != cut.len() + n_masks {
            return Err(format!("the head needs {n_masks} dropout masks"));
        }
        if self.info.feature_distance && !trunk.outputs().iter().any(|o| o.name() == FEATURE_DISTANCE) {
            return Err(format!("the trunk has no '{FEATURE_DISTANCE}' output"));
        }
        self.graph = Graph::Split { trunk, head, cut };
        let mut split = Vec::new();
        let mut split_fd = None;
        self.run_chunks(image.view(), &masks, [1, t], |p, fd| {
            split.extend(p.iter().copied());
            split_fd = fd;
            Ok(true)
        })
        .map_err(|e| e.to_string())?;
        let worst = whole.iter().zip(&split).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let fd_off = match (whole_fd, split_fd) {
            (Some(a), Some(b)) => (a - b).abs() > 1e-4 * a.abs().max(1.0),
            (a, b) => a.is_some() != b.is_some(),
        };
        if whole.len() != split.len() || worst > 1e-4 || fd_off {
            return Err(format!(
                "trunk + head differ from the model (max |Δ| {worst:e}, feature_distance {whole_fd:?} vs {split_fd:?}); \
                 rewrite them with training/split.py"
            ));
        }
        Ok(())
    }

    /// Runs one image [1,3,H,W] with the samples in chunks: samples `0..ends[0]`, then
    /// `ends[0]..ends[1]`, ...; `masks[k]` holds the masks of every sample up to the last end
    /// (`t * C_k` values). After each chunk `each` gets its probabilities [k,C,H,W] (straight from
    /// ONNX Runtime's buffer) and the frame's `feature_distance`, and says whether to go on.
    /// The trunk runs once when the model is split; otherwise each chunk runs the whole graph.
    pub fn run_chunks(
        &mut self,
        image: ArrayView4<'_, f32>,
        masks: &[Vec<f32>],
        ends: impl IntoIterator<Item = usize>,
        mut each: impl FnMut(ArrayView4<'_, f32>, Option<f32>) -> Result<bool>,
    ) -> Result<()> {
        let (h, w) = (self.info.height, self.info.width);
        let infer_err = |e: ort::Error| Error::Inference(e.to_string());
        if image.shape() != [1, 3, h, w] {
            return Err(Error::Inference(format!("image is {:?}, the model takes [1, 3, {h}, {w}]", image.shape())));
        }
        let sites = &self.info.dropout_sites;
        let has_distance = self.info.feature_distance;
        let image_input =
            || -> Result<SessionInputValue<'_>> { Ok(TensorRef::from_array_view(image).map_err(infer_err)?.into()) };
        // The trunk's outputs, kept for every chunk (split graph only).
        let mut kept: Vec<(String, ort::value::DynValue)> = Vec::new();
        let mut distance = None;
        if let Graph::Split { trunk, cut, .. } = &mut self.graph {
            let mut outputs = trunk.run(vec![("image", image_input()?)]).map_err(infer_err)?;
            if has_distance {
                distance = Some(read_distance(&outputs)?);
            }
            for name in cut.iter() {
                let v =
                    outputs.remove(name.as_str()).ok_or_else(|| Error::Inference(format!("trunk gave no '{name}'")))?;
                kept.push((name.clone(), v));
            }
        }
        let mut start = 0;
        for end in ends {
            if end <= start {
                continue;
            }
            let t = end - start;
            let mut inputs: Vec<(std::borrow::Cow<'_, str>, SessionInputValue<'_>)> =
                Vec::with_capacity(1 + kept.len() + masks.len());
            for (k, (mask, &c)) in masks.iter().zip(sites).enumerate() {
                let part = mask.get(start * c..end * c).ok_or_else(|| {
                    Error::Inference(format!(
                        "dropout_mask_{k} holds {} values, samples up to {end} need {}",
                        mask.len(),
                        end * c
                    ))
                })?;
                let view = ArrayView3::from_shape((1, t, c), part)
                    .map_err(|e| Error::Inference(format!("input shape: {e}")))?;
                inputs.push((
                    format!("dropout_mask_{k}").into(),
                    TensorRef::from_array_view(view).map_err(infer_err)?.into(),
                ));
            }
            let session = match &mut self.graph {
                Graph::Whole(session) => {
                    inputs.push(("image".into(), image_input()?));
                    session
                }
                Graph::Split { head, .. } => {
                    for (name, value) in &kept {
                        inputs.push((name.as_str().into(), value.into()));
                    }
                    head
                }
                Graph::Unloaded => return Err(Error::Inference("no graph loaded".into())),
            };
            let outputs = session.run(inputs).map_err(infer_err)?;
            if has_distance && distance.is_none() {
                distance = Some(read_distance(&outputs)?);
            }
            let (shape, probs) = outputs["probs"].try_extract_tensor::<f32>().map_err(infer_err)?;
            let expected = [1, t as i64, 2, h as i64, w as i64];
            if shape.as_ref() != expected {
                return Err(Error::Inference(format!("output shape {shape:?}, expected {expected:?}")));
            }
            let probs =
                ArrayView4::from_shape((t, 2, h, w), probs).map_err(|e| Error::Inference(format!("output: {e}")))?;
            if !each(probs, distance)? {
                break;
            }
            start = end;
        }
        Ok(())
    }
}

/// The frame's `feature_distance` from a run's outputs.
fn read_distance(outputs: &ort::session::SessionOutputs<'_>) -> Result<f32> {
    let (_, d) = outputs[FEATURE_DISTANCE].try_extract_tensor::<f32>().map_err(|e| Error::Inference(e.to_string()))?;
    let d = *d.first().ok_or_else(|| Error::Inference(format!("'{FEATURE_DISTANCE}' is empty")))?;
    // A NaN or negative distance is no distance: the trust score then treats the frame as new
    // (docs/interfaces.md §9), never as typical.
    Ok(if d >= 0.0 { d } else { f32::INFINITY })
}

/// One ONNX Runtime session for `path` with the options' provider and threads.
fn open(env: &Environment, opts: &ModelOptions, path: &Path) -> Result<(Session, &'static str)> {
    let ort_err = |e: ort::Error<ort::session::builder::SessionBuilder>| Error::Runtime(e.to_string());
    let mut builder = Session::builder(env)
        .map_err(|e| Error::Runtime(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(ort_err)?;
    if opts.intra_threads > 0 {
        builder = builder.with_intra_threads(opts.intra_threads).map_err(ort_err)?;
    }
    // No memory pattern: it keeps a planned buffer per input shape (the head sees chunks of
    // several sizes); off, the node holds 224 instead of 247 MB and bench time is unchanged
    // (BENCHMARKS.md, "Memory").
    builder = builder.with_memory_pattern(false).map_err(ort_err)?;
    let (mut builder, provider) = register_provider(builder, opts)?;
    let session = builder
        .commit_from_file(path)
        .map_err(|e| Error::Model { path: path.to_path_buf(), detail: format!("ONNX Runtime cannot load it: {e}") })?;
    Ok((session, provider))
}

fn register_provider(
    mut builder: ort::session::builder::SessionBuilder,
    opts: &ModelOptions,
) -> Result<(ort::session::builder::SessionBuilder, &'static str)> {
    let device = opts.device;
    let unusable = |detail: String| Error::Provider { device: device.name().into(), detail };
    if device == Device::Cpu {
        return Ok((builder, "CPUExecutionProvider"));
    }
    let chain = provider_chain(opts)?;
    let Some(first) = chain.first() else {
        let detail = format!("this build has no '{0}' feature (cargo build --release --features {0})", device.name());
        return fallback_or(builder, opts, unusable(detail));
    };
    let name = first.name();
    // TensorRT first, CUDA behind it for the nodes TensorRT leaves.
    for ep in &chain {
        if let Err(e) = ep.register(&mut builder) {
            return fallback_or(builder, opts, unusable(explain_provider_error(&e.to_string())));
        }
    }
    Ok((builder, name))
}

/// The providers to register for a GPU device, each failing loudly instead of silently.
fn provider_chain(opts: &ModelOptions) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
    #[allow(unused_mut)]
    let mut chain = Vec::new();
    let device = opts.device;
    #[cfg(feature = "tensorrt")]
    if device == Device::TensorRt {
        let dir = opts.trt_cache_dir.clone().unwrap_or_else(default_trt_cache);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let dir = dir.display().to_string();
        chain.push(
            ort::ep::TensorRT::default()
                .with_device_id(opts.gpu_device_id as i32)
                .with_fp16(opts.trt_fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(&dir)
                .with_timing_cache(true)
                .with_timing_cache_path(&dir)
                .build()
                .error_on_failure(),
        );
    }
    #[cfg(feature = "cuda")]
    if device == Device::Cuda || (device == Device::TensorRt && !chain.is_empty()) {
        chain.push(ort::ep::CUDA::default().with_device_id(opts.gpu_device_id as i32).build().error_on_failure());
    }
    let _ = (device, &opts.trt_cache_dir, opts.trt_fp16);
    Ok(chain)
}

/// What ONNX Runtime's provider error means for a user: no usable GPU or driver, TensorRT not
/// installed, or a missing GPU runtime library.
pub fn explain_provider_error(e: &str) -> String {
    let lower = e.to_ascii_lowercase();
    let no_device = [
        "libcuda.so",
        "no cuda-capable device",
        "cuda driver version is insufficient",
        "cudaerrornodevice",
        "cudaerrorinsufficientdriver",
        "cuda failure 100",
        "cuda failure 35",
        "cuda failure 999",
        "invalid device ordinal",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    if no_device {
        format!(
            "{e}\n -> no usable CUDA device or driver: the GPU runtime is installed, but the NVIDIA driver \
             (libcuda.so.1, R580 or newer) or a GPU is missing; check nvidia-smi and gpu_device_id"
        )
    } else if lower.contains("libnvinfer") {
        format!(
            "{e}\n -> TensorRT 10 (libnvinfer.so.10) is not installed: PyPI has no usable TensorRT for CUDA 13; \
             install it from NVIDIA and put its lib/ on LD_LIBRARY_PATH (README, Running on a GPU), or use \
             device cuda"
        )
    } else if lower.contains("cannot open shared object") || lower.contains("failed to load library") {
        format!(
            "{e}\n -> a GPU runtime library is missing: run `scripts/setup.sh --gpu` and `source scripts/env.sh` \
             (ORT_DYLIB_PATH must name onnxruntime-gpu's libonnxruntime.so, LD_LIBRARY_PATH its CUDA libraries)"
        )
    } else {
        format!("{e} (is onnxruntime-gpu installed and a GPU visible?)")
    }
}

fn fallback_or(
    builder: ort::session::builder::SessionBuilder,
    opts: &ModelOptions,
    err: Error,
) -> Result<(ort::session::builder::SessionBuilder, &'static str)> {
    if opts.allow_cpu_fallback {
        eprintln!("warning: {err}; running on CPU because allow_cpu_fallback is set");
        Ok((builder, "CPUExecutionProvider"))
    } else {
        Err(err)
    }
}

fn read_info(session: &Session) -> std::result::Result<ModelInfo, String> {
    let meta = session.metadata().map_err(|e| format!("cannot read metadata: {e}"))?;
    let get = |key: &str| meta.custom(key).ok_or_else(|| format!("metadata '{key}' missing (docs/interfaces.md §1)"));
    fn num<T: FromStr>(key: &str, v: String) -> std::result::Result<T, String> {
        v.trim().parse().map_err(|_| format!("metadata '{key}' = '{v}' is not a number"))
    }
    let triple = |key: &str| -> std::result::Result<[f32; 3], String> {
        let v = get(key)?;
        let parts: Vec<f32> = v.split(',').map(|s| num(key, s.to_string())).collect::<std::result::Result<_, _>>()?;
        parts.try_into().map_err(|_| format!("metadata '{key}' = '{v}' needs three comma-separated numbers"))
    };
    let classes = get("classes")?;
    if classes != "background,pipeline" {
        return Err(format!("metadata 'classes' = '{classes}', expected 'background,pipeline'"));
    }
    let order = get("color_order")?;
    if order != "RGB" {
        return Err(format!("metadata 'color_order' = '{order}', expected 'RGB'"));
    }
    let resize = match get("resize")?.as_str() {
        "stretch" => ResizeMode::Stretch,
        "letterbox" => ResizeMode::Letterbox,
        other => return Err(format!("metadata 'resize' = '{other}', expected stretch or letterbox")),
    };
    let sites = get("dropout_sites")?;
    let dropout_sites = sites
        .split(',')
        .map(|s| num::<usize>("dropout_sites", s.to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let score = get("score_method")?;
    let info = ModelInfo {
        height: num("input_height", get("input_height")?)?,
        width: num("input_width", get("input_width")?)?,
        mean: triple("mean")?,
        std: triple("std")?,
        resize,
        dropout_p: num("dropout_p", get("dropout_p")?)?,
        dropout_sites,
        dropout_placement: get("dropout_placement")?,
        default_samples: num("default_samples", get("default_samples")?)?,
        gate: GateDefaults {
            score_method: score,
            pixel_threshold: num("pixel_threshold", get("pixel_threshold")?)?,
            band_px: num("band_px", get("band_px")?)?,
            threshold_high: num("threshold_high", get("threshold_high")?)?,
            threshold_low: num("threshold_low", get("threshold_low")?)?,
            recover_frames: num("recover_frames", get("recover_frames")?)?,
        },
        feature_distance: session.outputs().iter().any(|o| o.name() == FEATURE_DISTANCE),
        trust: TrustModel::from_metadata(|k| meta.custom(k))?,
    };
    if info.trust.as_ref().is_some_and(|t| t.needs_feature_distance()) && !info.feature_distance {
        return Err(format!(
            "metadata 'trust_features' uses feature_distance, but the graph has no '{FEATURE_DISTANCE}' output"
        ));
    }
    if !(0.0..1.0).contains(&info.dropout_p) {
        return Err(format!("metadata 'dropout_p' = {} is outside [0, 1)", info.dropout_p));
    }
    if info.std.iter().any(|&s| s <= 0.0) || info.height == 0 || info.width == 0 || info.dropout_sites.is_empty() {
        return Err("metadata 'std' must be > 0, input size and dropout_sites non-empty".into());
    }
    Ok(info)
}

/// Checks inputs/outputs against docs/interfaces.md §1, naming the first difference.
fn check_signature(session: &Session, info: &ModelInfo) -> std::result::Result<(), String> {
    let dims = |vt: &ValueType| -> Option<(TensorElementType, Vec<i64>)> {
        Some((vt.tensor_type()?, vt.tensor_shape()?.iter().copied().collect()))
    };
    let fits = |got: &[i64], want: &[i64]| {
        got.len() == want.len() && got.iter().zip(want).all(|(g, w)| *w < 0 || *g < 0 || g == w)
    };
    let mut expected: Vec<(String, Vec<i64>)> =
        vec![("image".into(), vec![-1, 3, info.height as i64, info.width as i64])];
    for (k, &c) in info.dropout_sites.iter().enumerate() {
        expected.push((format!("dropout_mask_{k}"), vec![-1, -1, c as i64]));
    }
    let inputs = session.inputs();
    let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
    if inputs.len() != expected.len() {
        return Err(format!(
            "inputs are {names:?}; the metadata's dropout_sites ({}) needs image + {} dropout_mask_k inputs",
            info.dropout_sites.len(),
            info.dropout_sites.len()
        ));
    }
    for (name, want) in &expected {
        let outlet = inputs
            .iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| format!("input '{name}' missing; inputs are {names:?}"))?;
        match dims(outlet.dtype()) {
            Some((TensorElementType::Float32, got)) if fits(&got, want) => {}
            other => return Err(format!("input '{name}' is {other:?}, expected float32 {want:?} (-1 = any)")),
        }
    }
    let out = session.outputs().iter().find(|o| o.name() == "probs").ok_or("output 'probs' missing")?;
    let want = [-1, -1, 2, info.height as i64, info.width as i64];
    match dims(out.dtype()) {
        Some((TensorElementType::Float32, got)) if fits(&got, &want) => {}
        other => return Err(format!("output 'probs' is {other:?}, expected float32 {want:?} (-1 = any)")),
    }
    if let Some(o) = session.outputs().iter().find(|o| o.name() == FEATURE_DISTANCE) {
        match dims(o.dtype()) {
            Some((TensorElementType::Float32, got)) if got.len() == 1 => {}
            other => return Err(format!("output '{FEATURE_DISTANCE}' is {other:?}, expected float32 [N]")),
        }
    }
    Ok(())
}

/// The optional frame-level output of docs/interfaces.md §9.
pub const FEATURE_DISTANCE: &str = "feature_distance";

/// Directories that may hold the source checkout (models/, .venv): the build's own source
/// directory, `PIPELINE_SEG_ROOT`, and the ancestors of the running executable.
pub fn project_roots() -> Vec<std::path::PathBuf> {
    let mut roots = Vec::new();
    if let Some(r) = std::env::var_os("PIPELINE_SEG_ROOT") {
        roots.push(r.into());
    }
    roots.push(env!("CARGO_MANIFEST_DIR").into());
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(|p| p.to_path_buf()));
    }
    roots
}

#[cfg(test)]
mod ort_search_tests {
    use super::*;

    /// A fresh directory tree under the system's temp directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pipeline_seg_ort_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn touch(path: &Path) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
        path.to_path_buf()
    }

    /// One library at every place of the search; each place must win over all later ones.
    #[test]
    fn each_place_wins_over_the_later_ones_in_the_documented_order() {
        let root = scratch("order");
        let prefix_lib = touch(&root.join("prefix_a/lib/libonnxruntime.so.1.20.0"));
        let prefix_py =
            touch(&root.join("prefix_b/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"));
        let checkout =
            touch(&root.join("checkout/.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"));
        let python = root.join("python3");
        std::fs::write(&python, format!("#!/bin/sh\necho {}\n", root.join("py/onnxruntime").display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        let python_lib = touch(&root.join("py/onnxruntime/capi/libonnxruntime.so.1.19.2"));
        let ld = touch(&root.join("ld/libonnxruntime.so"));
        let system = touch(&root.join("usr_lib/libonnxruntime.so.1.17.1"));

        let mut search = OrtSearch {
            explicit: Some("/explicit/libonnxruntime.so".into()),
            env: Some("/env/libonnxruntime.so".into()),
            prefixes: vec![root.join("missing_prefix"), root.join("prefix_a"), root.join("prefix_b")],
            checkouts: vec![root.join("checkout")],
            python3: Some(python),
            ld_library_path: vec![root.join("ld")],
            ldconfig: false,
            system_dirs: vec![root.join("usr_lib")],
        };
        let found = |s: &OrtSearch| s.find().unwrap().0;
        assert_eq!(found(&search), PathBuf::from("/explicit/libonnxruntime.so"));
        search.explicit = None;
        assert_eq!(found(&search), PathBuf::from("/env/libonnxruntime.so"));
        search.env = None;
        assert_eq!(found(&search), prefix_lib);
        search.prefixes.remove(1);
        assert_eq!(found(&search), prefix_py);
        search.prefixes.clear();
        assert_eq!(found(&search), checkout);
        search.checkouts.clear();
        assert_eq!(found(&search), python_lib);
        search.python3 = None;
        assert_eq!(found(&search), ld);
        search.ld_library_path.clear();
        assert_eq!(found(&search), system);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_newest_version_wins_and_other_libraries_do_not_count() {
        let root = scratch("newest");
        touch(&root.join("libonnxruntime.so"));
        touch(&root.join("libonnxruntime.so.1.9.0"));
        let newest = touch(&root.join("libonnxruntime.so.1.31.1"));
        touch(&root.join("libonnxruntime_providers_shared.so"));
        assert_eq!(newest_library(&root), Some(newest));
        let other = scratch("other");
        touch(&other.join("libonnxruntime_providers_cuda.so"));
        assert_eq!(newest_library(&other), None);
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&other);
    }

    #[test]
    fn not_found_names_every_place_tried() {
        let root = scratch("none");
        let search = OrtSearch {
            prefixes: vec![root.join("install/pipeline_seg")],
            checkouts: vec![root.join("checkout")],
            python3: Some(root.join("no_python3")),
            ld_library_path: vec![root.join("ld")],
            system_dirs: vec![root.join("usr_lib")],
            ..OrtSearch::default()
        };
        let msg = search.find().unwrap_err().to_string();
        for place in [
            "onnxruntime_lib parameter",
            "ORT_DYLIB_PATH",
            "install/pipeline_seg (each <prefix>/lib",
            "source checkout's .venv",
            "onnxruntime Python package",
            "LD_LIBRARY_PATH",
            "usr_lib",
        ] {
            assert!(msg.contains(place), "{place} missing from: {msg}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_installed_executable_knows_its_prefix() {
        let exe = Path::new("/ws/install/pipeline_seg/lib/pipeline_seg/pipeline_seg_node");
        assert_eq!(install_prefix(exe), Some(PathBuf::from("/ws/install/pipeline_seg")));
        assert_eq!(install_prefix(Path::new("/repo/target/release/pipeline_seg")), None);
    }
}
