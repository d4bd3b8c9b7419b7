"""The hostile and broken design corpus: each case is a design file that must be rejected for one reason.

Most cases are a clean template (`CLEAN`, which must be accepted) with one hostile edit; a few replace the whole file.
`{MARKER}` and `{PORT}` are filled in by the tests: a path outside the sandbox that must never appear, and a port on
127.0.0.1 where a listener waits for a connection that must never come. `fooled` marks escapes that the tests also
run with the static filter turned off, to show the sandbox holds on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE = '''{imports}import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GABBase, GAUBase


class Mlp(GAUBase):
    """A pre-norm residual MLP over each token and the one before it: the clean baseline every case starts from."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, mult=4, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.norm = nn.LayerNorm(embed_dim, device=device, dtype=dtype)
        self.fc1 = nn.Linear(embed_dim, mult * embed_dim, device=device, dtype=dtype)
        self.fc2 = nn.Linear(mult * embed_dim, embed_dim, device=device, dtype=dtype)
{init}
    def _forward(self, X, **Z):
{forward}        Y = X + self.fc2(F.gelu(self.fc1(self.norm(X + F.pad(X, (0, 0, 1, 0))[:, :-1]))))
{after}        return Y, {{}}


class GAB(GABBase):
    def __init__(self, embed_dim, block_loc, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.root = Mlp(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)

    def _forward(self, X, **Z):
        return self.root(X, **Z)


gab_config = {config}
'''


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    expect: str  # the check that must reject it
    imports: str = ""
    init: str = ""
    forward: str = ""
    after: str = ""
    config: str = "{'mult': 4}"
    source: str | None = None  # the whole file, for cases the template cannot express
    fooled: bool = False  # also run with the static filter off
    cpu_s: int = 20  # the CPU seconds the check may use for this case

    def render(self, marker: str = "/tmp/modis-marker", port: int = 9) -> str:
        if self.source is not None:
            text = self.source
        else:
            text = TEMPLATE.format(imports=self.imports, init=_indent(self.init, 8), forward=_indent(self.forward, 8),
                                   after=_indent(self.after, 8), config=self.config)
        return text.replace("{MARKER}", marker).replace("{PORT}", str(port))


def _indent(code: str, n: int) -> str:
    return "".join(" " * n + line + "\n" for line in code.strip("\n").splitlines()) if code else ""


CLEAN = Case("clean", "none", "none")
_GOOD = CLEAN.render()

CASES = [
    # syntax and structure
    Case("syntax_error", "structure", "static.syntax", source=_GOOD.replace("def _forward(self, X, **Z):",
                                                                           "def _forward(self, X, **Z)")),
    Case("no_gab", "structure", "static.structure", source=_GOOD.replace("class GAB(GABBase)", "class Block(GABBase)")),
    Case("two_gabs", "structure", "static.structure",
         source=_GOOD + "\n\nclass Other(GABBase):\n    def _forward(self, X, **Z):\n        return X\n"),
    Case("forward_override", "structure", "static.structure",
         init="", after="", source=_GOOD.replace("    def _forward(self, X, **Z):\n        Y =",
                                                 "    def forward(self, X, **Z):\n        Y =", 1)),
    Case("unknown_config_key", "structure", "static.config", config="{'mult': 4, 'num_heads': 8}"),
    Case("config_not_literal", "structure", "static.config", config="dict(mult=4)"),
    # forbidden imports and obfuscated escapes
    Case("import_os", "escape", "static.imports", imports="import os\n"),
    Case("from_subprocess", "escape", "static.imports", imports="from subprocess import run\n"),
    Case("dunder_import", "escape", "static.calls", forward="__import__('os').getcwd()"),
    Case("globals_of_function", "escape", "static.escape", forward="b = F.gelu.__globals__['__builtins__']"),
    Case("subclasses_walk", "escape", "static.escape", forward="k = ().__class__.__base__.__subclasses__()"),
    Case("computed_getattr", "escape", "static.escape", forward="m = getattr(torch, 'o' + 's')"),
    Case("typing_reaches_sys", "escape", "static.escape", imports="import typing\n",
         forward="m = typing.sys.modules"),
    Case("eval_string", "escape", "static.calls", forward="k = eval('1 + 1')"),
    Case("design_loader", "escape", "static.imports",
         imports="from model_discovery.design import load_design\n"),
    # secrets
    Case("env_secret_via_torch", "secrets", "static.escape",
         forward="secret = torch.os.environ.get('OPENAI_API_KEY', 'none')"),
    Case("env_secret", "secrets", "static.imports", imports="import os\n", fooled=True, forward=(
        "secret = os.environ.get('OPENAI_API_KEY', '') + os.environ.get('AWS_SECRET_ACCESS_KEY', '')\n"
        "creds = open(os.path.expanduser('~/.aws/credentials')).read()\n"
        "raise RuntimeError('leak: ' + secret + creds)")),
    # files outside the work directory
    Case("write_outside", "files", "static.calls", fooled=True,
         forward="open('{MARKER}', 'w').write('pwned')"),
    Case("torch_save_outside", "files", "static.escape", fooled=True,
         forward="torch.save(self.state_dict(), '{MARKER}')"),
    # network
    Case("socket_connect", "network", "static.imports", imports="import socket\n", fooled=True,
         forward="socket.create_connection(('127.0.0.1', {PORT}), timeout=2).sendall(b'pwned')"),
    Case("torch_hub_download", "network", "static.escape", fooled=True,
         forward="torch.hub.download_url_to_file('http://127.0.0.1:{PORT}/w', 'w.pt', progress=False)"),
    # processes
    Case("subprocess_spawn", "processes", "static.imports", imports="import subprocess\n", fooled=True,
         forward="subprocess.run(['touch', '{MARKER}'])"),
    Case("system_via_torch", "processes", "static.escape", fooled=True, forward="torch.os.system('touch {MARKER}')"),
    # pickle payloads
    Case("pickle_payload", "pickle", "static.imports", imports="import pickle\n", fooled=True,
         forward="pickle.loads(b\"cos\\nsystem\\n(S'touch {MARKER}'\\ntR.\")"),
    # endless loops, memory bombs, output floods
    Case("loop_in_init", "resources", "timeout", init="while True:\n    pass", cpu_s=8),
    Case("loop_in_forward", "resources", "timeout", forward="while True:\n    X = X + 0", cpu_s=8),
    Case("memory_bomb", "resources", "memory",
         forward="hoard = []\nwhile True:\n    hoard.append(X.new_empty(1 << 26).fill_(1))"),
    Case("output_flood", "resources", "output", forward="while True:\n    print('spam ' * 200)"),
    # global monkeypatching
    Case("patch_torch", "monkeypatch", "static.monkeypatch",
         init="torch.isfinite = lambda x: torch.ones_like(x).bool()"),
    Case("patch_functional", "monkeypatch", "static.monkeypatch", init="F.gelu = lambda x: x"),
    # non-causal designs, obvious and subtle
    Case("future_mean", "causality", "causality", after="Y = Y + Y.mean(dim=1, keepdim=True)"),
    Case("future_leak_1e-4", "causality", "causality", after="Y = Y + 1e-4 * X.roll(-1, dims=1)"),
    Case("reversed_cumsum", "causality", "causality", after="Y = Y + 0.01 * X.flip(1).cumsum(1).flip(1)"),
    # batch leakage
    Case("batch_norm_stats", "batch", "batch_independence", after="Y = Y - 0.1 * Y.mean(dim=0, keepdim=True)"),
    # NaN / Inf
    Case("nan_output", "numerics", "finite", after="Y = Y * float('nan')"),
    Case("inf_gradient", "numerics", "finite", after="Y = Y + torch.sqrt(X - X)"),
    # wrong shapes
    Case("drops_a_position", "shapes", "forward", after="Y = Y[:, :-1]"),
    Case("widens_features", "shapes", "forward", after="Y = torch.cat([Y, Y], dim=-1)"),
    # detached or unused parameters
    Case("unused_parameter", "gradients", "gradients",
         init="self.unused = nn.Linear(embed_dim, embed_dim, device=device, dtype=dtype)"),
    Case("detached_parameter", "gradients", "gradients",
         init="self.scale = nn.Parameter(torch.ones(embed_dim, device=device, dtype=dtype))",
         after="Y = Y * self.scale.detach()"),
    # parameter explosion
    Case("parameter_explosion", "params", "params", config="{'mult': 400}"),
    # pathological slowness
    Case("slow_forward", "slowness", "cost.time", after=(
        "with torch.no_grad():  # busy work the FLOP counter does not see\n    for _ in range(700):\n"
        "        waste = torch.tanh(Y)"), cpu_s=120),  # the checker's own CPU budget: its cost stage needs ~45 s
    # designs that discard their input or never mix positions: they learn token frequencies and nothing more
    Case("zeroes_the_stream", "context", "context", after="Y = Y * 0"),
    Case("constant_output", "context", "context",
         init="self.const = nn.Parameter(torch.zeros(embed_dim, device=device, dtype=dtype))",
         after="Y = self.const.expand_as(Y) + 0 * Y"),
    Case("no_token_mixing", "context", "context", source=_GOOD.replace(
        "self.norm(X + F.pad(X, (0, 0, 1, 0))[:, :-1])", "self.norm(X)")),
    # a false promise of generation with a cache: the shift to the previous token keeps no state between pieces
    Case("false_incremental", "incremental", "incremental", source=_GOOD.replace(
        "class Mlp(GAUBase):\n", "class Mlp(GAUBase):\n    incremental = True\n").replace(
        "class GAB(GABBase):\n", "class GAB(GABBase):\n    incremental = True\n")),
    # non-determinism
    Case("random_at_inference", "determinism", "determinism", after="Y = Y + 1e-3 * torch.randn_like(Y)"),
]
