//! Hugging Face model directories: finding one (a plain directory, a hub
//! cache folder `models--ORG--NAME`, or `ORG/NAME` in the local HF cache),
//! loading its weights from `model.safetensors` or a sharded
//! `model.safetensors.index.json`, and writing one that `transformers`
//! loads unchanged.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use crate::config::LlamaConfig;
use crate::device::{resolve_device, resolve_kind, DType, DeviceSpec};
use crate::error::{ModelError, Result};
use crate::files::write_json;
use crate::llama::{InitMode, Llama};
use crate::tokenizer::TextTokenizer;

/// Tokenizer files copied along with a model.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// Resolves what a user passed as `--model` (or `model =`) to a
/// directory with `config.json`: a path, a hub cache folder or snapshot,
/// or `ORG/NAME[@REV]` in the local hub cache (see `smolsweep_hub`).
pub fn resolve_model_dir(path: &Path) -> Result<PathBuf> {
    let located = smolsweep_hub::locate(path, smolsweep_hub::RepoType::Model)?;
    let dir = located.first().to_path_buf();
    if dir.join("config.json").is_file() {
        return Ok(dir);
    }
    Err(ModelError::ModelDir {
        path: dir,
        msg: "no config.json (expected a HF model directory, a hub cache folder \
              models--ORG--NAME, or its snapshots/REV)"
            .into(),
    })
}

fn weight_files(dir: &Path) -> Result<(PathBuf, HashMap<String, PathBuf>)> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.is_file() {
        let names = safetensors_names(&single)?;
        let map = names.into_iter().map(|n| (n, single.clone())).collect();
        return Ok((single, map));
    }
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: index.clone(),
                source,
            })?;
        let wm = v
            .get("weight_map")
            .and_then(|w| w.as_object())
            .ok_or_else(|| ModelError::Config {
                path: index.clone(),
                field: "weight_map".into(),
                msg: "missing or not an object".into(),
            })?;
        let mut map = HashMap::new();
        for (name, file) in wm {
            let file = file.as_str().ok_or_else(|| ModelError::Config {
                path: index.clone(),
                field: format!("weight_map.{name}"),
                msg: "expected a file name".into(),
            })?;
            map.insert(name.clone(), dir.join(file));
        }
        return Ok((index, map));
    }
    Err(ModelError::ModelDir {
        path: dir.to_path_buf(),
        msg: "no model.safetensors or model.safetensors.index.json".into(),
    })
}

/// The tensor names a model directory's safetensors hold.
pub fn tensor_names(dir: &Path) -> Result<Vec<String>> {
    let (_, map) = weight_files(dir)?;
    let mut names: Vec<String> = map.into_keys().collect();
    names.sort();
    Ok(names)
}

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: read-only map of a weight file we only read from.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    Ok(map)
}

fn safetensors_names(path: &Path) -> Result<Vec<String>> {
    let map = map_file(path)?;
    let (_, meta) = SafeTensors::read_metadata(&map).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(meta.tensors().into_keys().collect())
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        Dtype::F64 => Some(Kind::Double),
        _ => None,
    }
}

/// Fills every parameter of `model` from the directory's safetensors,
/// checking names and shapes. Tensors the model does not use (a tied
/// `lm_head.weight`, rotary buffers) are ignored.
pub fn load_weights(model: &Llama, dir: &Path) -> Result<()> {
    let (source, map) = weight_files(dir)?;
    let vars = model.vs.variables();
    let mut by_file: BTreeMap<PathBuf, Vec<(&String, &Tensor)>> = BTreeMap::new();
    let mut names: Vec<_> = vars.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, var) in names {
        let file = map.get(name).ok_or_else(|| ModelError::MissingTensor {
            path: source.clone(),
            tensor: name.clone(),
        })?;
        by_file.entry(file.clone()).or_default().push((name, var));
    }
    let _guard = tch::no_grad_guard();
    for (file, wanted) in by_file {
        let bytes = map_file(&file)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: file.clone(),
            msg: e.to_string(),
        })?;
        for (name, var) in wanted {
            let view = st.tensor(name).map_err(|_| ModelError::MissingTensor {
                path: file.clone(),
                tensor: name.clone(),
            })?;
            let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let expected = var.size();
            if found != expected {
                return Err(ModelError::Shape {
                    path: file.clone(),
                    tensor: name.clone(),
                    expected,
                    found,
                });
            }
            let kind = kind_of(view.dtype()).ok_or_else(|| ModelError::Tensor {
                path: file.clone(),
                tensor: name.clone(),
                msg: format!("dtype {:?} is not a float type", view.dtype()),
            })?;
            let t = Tensor::f_from_data_size(view.data(), &found, kind)?;
            var.shallow_clone().f_copy_(&t)?;
        }
    }
    Ok(())
}

fn st_dtype(kind: Kind) -> Dtype {
    match kind {
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        _ => Dtype::F32,
    }
}

/// The `torch_dtype` string HF writes for a kind.
pub fn torch_dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        _ => "float32",
    }
}

/// Writes named tensors to a safetensors file atomically (a temporary
/// file renamed into place), converting to `kind` when given.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)], kind: Option<Kind>) -> Result<()> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let k = kind.unwrap_or_else(|| t.kind());
        let t = t.to_device(Device::Cpu).to_kind(k).contiguous();
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * k.elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), st_dtype(k), shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    let meta: HashMap<String, String> = [("format".to_owned(), "pt".to_owned())].into();
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| {
        ModelError::Safetensors {
            path: tmp.clone(),
            msg: e.to_string(),
        }
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// Reads every tensor of a safetensors file (on the CPU, in its dtype).
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = map_file(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| ModelError::Tensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            msg: format!("dtype {:?} is not a float type", view.dtype()),
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        out.push((name, Tensor::f_from_data_size(view.data(), &shape, kind)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `model.safetensors` (HF tensor names, `kind` dtype, a tied head
/// left out as HF does), `config.json` and `generation_config.json`.
pub fn save_weights_and_config(model: &Llama, dir: &Path, kind: Kind) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(&dir.join("model.safetensors"), &vars, Some(kind))?;
    let c = &model.config;
    let cfg = c.to_hf_json(torch_dtype_name(kind));
    write_json(&dir.join("config.json"), &cfg)?;
    let gen = serde_json::json!({
        "_from_model_config": true,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id,
        "pad_token_id": c.pad_token_id,
    });
    write_json(&dir.join("generation_config.json"), &gen)
}

/// A model directory loaded for use: network, tokenizer and where it came from.
#[derive(Debug)]
pub struct LoadedModel {
    pub dir: PathBuf,
    pub model: Llama,
    pub tokenizer: TextTokenizer,
}

impl LoadedModel {
    /// Loads a model directory (see [`resolve_model_dir`]) onto a device.
    pub fn load(path: &Path, device: DeviceSpec, dtype: DType) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        // The tokenizer first: a missing one is the cheaper error to find.
        let tokenizer = TextTokenizer::from_dir(&dir)?;
        let device = resolve_device(device)?;
        let kind = resolve_kind(dtype, device);
        let model = Llama::new(config, device, kind, InitMode::Empty)?;
        load_weights(&model, &dir)?;
        Ok(LoadedModel {
            dir,
            model,
            tokenizer,
        })
    }

    /// Token ids that end a generation: the config's eos ids and the
    /// tokenizer's eos token.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut ids = self.model.config.eos_ids();
        if let Some(id) = self.tokenizer.eos_id() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// Writes a complete HF directory: weights, config and the tokenizer
    /// files of the directory this model came from.
    pub fn save(&self, out: &Path, kind: Kind) -> Result<()> {
        save_weights_and_config(&self.model, out, kind)?;
        copy_tokenizer_files(&self.dir, out)
    }
}

/// Copies the tokenizer files present in `src` to `dst` (the generation
/// config only when `dst` has none, since weights saving writes one).
pub fn copy_tokenizer_files(src: &Path, dst: &Path) -> Result<()> {
    for name in TOKENIZER_FILES {
        let from = src.join(name);
        let to = dst.join(name);
        if from.is_file() && !(name == &"generation_config.json" && to.is_file()) {
            std::fs::copy(&from, &to).map_err(|e| ModelError::io(&to, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model(seed: i64) -> Llama {
        Llama::new(
            LlamaConfig::tiny(61),
            Device::Cpu,
            Kind::Float,
            InitMode::Random { seed },
        )
        .expect("model")
    }

    #[test]
    fn save_then_load_gives_identical_logits() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = tiny_model(3);
        save_weights_and_config(&m, dir.path(), Kind::Float).expect("save");
        let cfg = LlamaConfig::from_file(&dir.path().join("config.json")).expect("config");
        assert_eq!(cfg.to_hf_json("float32"), m.config.to_hf_json("float32"));
        let m2 = Llama::new(cfg, Device::Cpu, Kind::Float, InitMode::Empty).expect("new");
        load_weights(&m2, dir.path()).expect("load");
        let x = Tensor::from_slice(&[4i64, 8, 15, 16, 23, 42]).unsqueeze(0);
        assert!(m.forward(&x).expect("a").equal(&m2.forward(&x).expect("b")));
    }

    #[test]
    fn sharded_index_loads() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = tiny_model(5);
        save_weights_and_config(&m, dir.path(), Kind::Float).expect("save");
        // Split into two shards by rewriting with the safetensors crate.
        let bytes = std::fs::read(dir.path().join("model.safetensors")).expect("read");
        let st = SafeTensors::deserialize(&bytes).expect("parse");
        let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
        names.sort();
        let (a, b) = names.split_at(names.len() / 2);
        let mut weight_map = serde_json::Map::new();
        for (shard, part) in [
            ("model-00001-of-00002.safetensors", a),
            ("model-00002-of-00002.safetensors", b),
        ] {
            let views: Vec<_> = part
                .iter()
                .map(|n| (n.clone(), st.tensor(n).expect("tensor")))
                .collect();
            safetensors::serialize_to_file(views, None, &dir.path().join(shard)).expect("write");
            for n in part {
                weight_map.insert(n.clone(), shard.into());
            }
        }
        drop(st);
        std::fs::remove_file(dir.path().join("model.safetensors")).expect("rm");
        write_json(
            &dir.path().join("model.safetensors.index.json"),
            &serde_json::json!({"metadata": {}, "weight_map": weight_map}),
        )
        .expect("index");
        let m2 =
            Llama::new(m.config.clone(), Device::Cpu, Kind::Float, InitMode::Empty).expect("new");
        load_weights(&m2, dir.path()).expect("load");
        let x = Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0);
        assert!(m.forward(&x).expect("a").equal(&m2.forward(&x).expect("b")));
    }

    #[test]
    fn missing_tensor_and_wrong_shape_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = tiny_model(1);
        let t = Tensor::zeros([3, 3], (Kind::Float, Device::Cpu));
        let mut bytes = vec![0u8; 36];
        t.copy_data_u8(&mut bytes, 9);
        let write = |name: &str, shape: Vec<usize>, data: &[u8]| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, shape, data).expect("view");
            safetensors::serialize_to_file(
                vec![(name.to_owned(), v)],
                None,
                &dir.path().join("model.safetensors"),
            )
            .expect("write");
        };
        write("model.norm.weight", vec![3, 3], &bytes);
        let err = load_weights(&m, dir.path())
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("model.embed_tokens.weight") && err.contains("missing"),
            "{err}"
        );

        // Every tensor present, one with a wrong shape.
        let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = m
            .expected_tensors()
            .into_iter()
            .map(|(n, s)| {
                let numel: i64 = s.iter().product();
                (
                    n,
                    s.iter().map(|&d| d as usize).collect(),
                    vec![0u8; numel as usize * 4],
                )
            })
            .collect();
        for e in named
            .iter_mut()
            .filter(|e| e.0 == "model.layers.1.mlp.up_proj.weight")
        {
            e.1 = vec![128, 32];
            e.2 = vec![0u8; 128 * 32 * 4];
        }
        let views: Vec<_> = named
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors"))
            .expect("write");
        let err = load_weights(&m, dir.path()).expect_err("shape").to_string();
        assert!(
            err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("[128, 32]"),
            "{err}"
        );
    }

    #[test]
    fn hub_cache_layout_resolves() {
        let cache = tempfile::tempdir().expect("tmp");
        let repo = cache.path().join("models--Org--Tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
        std::fs::write(repo.join("refs/main"), "abc123\n").expect("ref");
        std::fs::write(snap.join("config.json"), "{}").expect("cfg");
        assert_eq!(resolve_model_dir(&repo).expect("resolve"), snap);
        let err = resolve_model_dir(cache.path())
            .expect_err("not a model")
            .to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
