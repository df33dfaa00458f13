"""SpanVLA's flow-matching action expert.

A small transformer (same head count as the backbone, smaller width) runs 8 action tokens. Each token's
input is the embedding of the current action state (at tau = 0 this is the history extrapolation a_his,
hence "history-trajectory embedding") plus a time embedding and a slot embedding. In every expert layer the
action tokens attend jointly to the keys/values of one backbone layer's prompt pass (every k-th layer,
detached: stop-gradient into the backbone) and to their own, as openpi's action expert reads the VLM's cache;
attention runs at the backbone's head size so the cached keys/values are used as they are.

Two recipes share this network:
- history-initialised (SpanVLA): a_tau = tau*a + (1-tau)*a0 with a0 = a_his (+ small noise in training),
  target v = a - a0, tau = sigmoid(N(mu, sigma)); inference a <- a + f/N over N Euler steps from a_his.
  The start a0 is nearly a point, so the target is uncertain mostly near tau = 0, where the first step runs:
  mu < 0 shifts the training taus towards it (at mu = 0 only 1.4% fall below 0.1).
- noise-initialised (pi0, the ablation): x_t = t*eps + (1-t)*a, u = eps - a, t ~ Beta(1.5, 1)*0.999 + 0.001;
  inference from eps at t = 1 down to t = 0.
Actions are the 8 ego-frame poses divided by fixed per-coordinate scales.
With params.flow_state_token, the expert's sequence starts with pi0's state token: the ego velocity,
acceleration and driving command embedded by the expert itself, so the expert reads the ego state directly
rather than only through the VLM's keys/values.

a_his: the history rolled forward at constant speed and yaw rate (the last history step's relative motion,
repeated 8 times). It lives in exactly the space of the target (ego frame, 0.5 s spacing), costs no
parameters, and is right to first order whenever the ego keeps its motion, so the flow only has to learn the
correction; with no history motion it is "stand still".
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivefine_core.models.batch import Batch
from drivefine_core.models.layers import KV, MLP, attend, init_weights, merge_heads, sinusoidal_embedding, split_heads
from drivefine_core.models.params import NUM_POSES, ModelParams

FlowKind = Literal["history", "noise"]
STATE_DIM = 8  # velocity (2) and acceleration (2), scaled as the VLM's ego token; command one-hot (4)


def history_extrapolation(history: Tensor, num_poses: int = NUM_POSES) -> Tensor:
    """(B, H, 3) ego-frame history (last row = current = 0) -> (B, num_poses, 3) constant-twist future."""
    prev, cur = history[:, -2], history[:, -1]
    c, s = torch.cos(prev[:, 2]), torch.sin(prev[:, 2])
    d = cur[:, :2] - prev[:, :2]
    step = torch.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)  # motion in prev's frame
    yaw = torch.atan2(torch.sin(cur[:, 2] - prev[:, 2]), torch.cos(cur[:, 2] - prev[:, 2]))
    pos, heading = cur[:, :2], cur[:, 2]
    out = []
    for _ in range(num_poses):
        c, s = torch.cos(heading), torch.sin(heading)
        pos = pos + torch.stack([c * step[:, 0] - s * step[:, 1], s * step[:, 0] + c * step[:, 1]], -1)
        heading = heading + yaw
        out.append(torch.cat([pos, heading[:, None]], -1))
    return torch.stack(out, 1)


class FlowLayer(nn.Module):
    """Self + cross attention in one: action queries over [backbone layer KV ; own KV], then an MLP."""

    def __init__(self, width: int, heads: int, head_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.norm1 = nn.LayerNorm(width)
        self.q, self.k, self.v = nn.Linear(width, inner), nn.Linear(width, inner), nn.Linear(width, inner)
        self.proj = nn.Linear(inner, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x: Tensor, prefix: KV) -> Tensor:
        h = self.norm1(x)
        q, k, v = (split_heads(f(h), self.heads) for f in (self.q, self.k, self.v))
        keys, values = torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2)
        x = x + self.proj(merge_heads(attend(q, keys, values, None)))
        return x + self.mlp(self.norm2(x))


class FlowExpert(nn.Module):
    """f(a_tau, tau, backbone KV) -> velocity, all in normalised action units (B, 8, 3)."""

    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        w = p.flow_width
        self.read_layers = p.flow_read_layers
        n_read, n = len(self.read_layers), p.flow_layers
        # expert layer i reads an evenly spaced backbone layer, the deepest one read always included
        self.layer_map = [self.read_layers[(i + 1) * n_read // n - 1] for i in range(n)]
        self.action_in = nn.Linear(3, w)
        self.slot = nn.Parameter(torch.zeros(1, NUM_POSES, w))
        self.time = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        # pi0's action-time MLP: lets the time scale the action embedding (a sum alone cannot)
        self.fuse = nn.Sequential(nn.Linear(2 * w, w), nn.SiLU(), nn.Linear(w, w))
        self.layers = nn.ModuleList(FlowLayer(w, p.heads, p.head_dim, p.mlp_ratio) for _ in range(n))
        self.norm = nn.LayerNorm(w)
        self.action_out = nn.Linear(w, 3)
        self.state_in = nn.Linear(STATE_DIM, w) if p.flow_state_token else None
        init_weights(self)
        nn.init.normal_(self.slot, std=0.02)

    def forward(self, a: Tensor, tau: Tensor, backbone_kv: list[KV], state: Tensor | None = None) -> Tensor:
        """state: (B, STATE_DIM) from FlowPolicy.state_of, required iff the expert has a state token."""
        temb = self.time(sinusoidal_embedding(tau, self.slot.shape[-1]))[:, None].expand(-1, a.shape[1], -1)
        emb = self.action_in(a)
        x = emb + temb + self.fuse(torch.cat([emb, temb], -1)) + self.slot
        if (self.state_in is None) != (state is None):
            raise ValueError("the flow expert's state token and the state given must both be present or absent")
        if self.state_in is not None and state is not None:
            x = torch.cat([self.state_in(state)[:, None], x], 1)
        for layer, src in zip(self.layers, self.layer_map):
            k, v = backbone_kv[src]
            x = layer(x, (k.detach(), v.detach()))  # stop-gradient into the backbone
        return self.action_out(self.norm(x[:, -a.shape[1]:]))


class FlowPolicy(nn.Module):
    """A FlowExpert with its recipe (history- or noise-initialised): loss and Euler sampling."""

    def __init__(self, p: ModelParams, kind: FlowKind) -> None:
        super().__init__()
        if kind not in ("history", "noise"):
            raise ValueError(f"flow kind must be 'history' or 'noise', got '{kind}'")
        self.p, self.kind = p, kind
        self.expert = FlowExpert(p)
        self.register_buffer("scale", torch.tensor(p.action_scale), persistent=False)

    def state_of(self, batch: Batch) -> Tensor | None:
        """(B, STATE_DIM) ego state for the expert's state token; None when it has none."""
        if self.expert.state_in is None:
            return None
        p = self.p
        return torch.cat([batch["velocity"] / p.velocity_scale, batch["acceleration"] / p.acceleration_scale,
                          batch["command"]], -1).float()

    def normalise(self, poses: Tensor) -> Tensor:
        return poses / self.scale

    def denormalise(self, actions: Tensor) -> Tensor:
        return actions * self.scale

    def loss(self, batch: Batch, backbone_kv: list[KV], generator: torch.Generator | None = None) -> Tensor:
        """Flow-matching MSE for the batch's (B, 8, 3) target poses (metres / radians)."""
        history, state = batch["history"], self.state_of(batch)
        a = self.normalise(batch["target"].float())
        b, dev = a.shape[0], a.device
        eps = torch.randn(a.shape, device=dev, generator=generator)
        if self.kind == "history":
            z = torch.randn(b, device=dev, generator=generator)
            tau = torch.sigmoid(self.p.flow_tau_mu + self.p.flow_tau_sigma * z)  # the shifted (logit-)normal
            a0 = self.normalise(history_extrapolation(history.float())) + self.p.flow_train_noise * eps
            a_tau = tau[:, None, None] * a + (1 - tau[:, None, None]) * a0
            return F.mse_loss(self.expert(a_tau, tau, backbone_kv, state), a - a0)
        t = _beta_a1(1.5, b, dev, generator) * 0.999 + 0.001
        x_t = t[:, None, None] * eps + (1 - t[:, None, None]) * a
        return F.mse_loss(self.expert(x_t, t, backbone_kv, state), eps - a)

    @torch.no_grad()
    def sample(self, batch: Batch, backbone_kv: list[KV], steps: int | None = None,
               stochastic: bool = False, noise_std: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """(B, 8, 3) poses in metres / radians. History recipe: `stochastic` perturbs the initial state with
        params.flow_sample_noise (or `noise_std`) for GRPO exploration; steps = 0 returns the initial state."""
        history, state = batch["history"], self.state_of(batch)
        b, dev = history.shape[0], history.device
        if noise_std is None:
            noise_std = self.p.flow_sample_noise if stochastic else 0.0
        if self.kind == "history":
            steps = self.p.flow_steps if steps is None else steps
            a = self.normalise(history_extrapolation(history.float()))
            if noise_std > 0:
                a = a + noise_std * torch.randn(a.shape, device=dev, generator=generator)
            for i in range(steps):
                tau = torch.full((b,), i / steps, device=dev)
                a = a + self.expert(a, tau, backbone_kv, state) / steps
            return self.denormalise(a)
        steps = self.p.flow_noise_steps if steps is None else steps
        x = torch.randn(b, NUM_POSES, 3, device=dev, generator=generator)
        for i in range(steps):
            t = torch.full((b,), 1 - i / steps, device=dev)
            x = x - self.expert(x, t, backbone_kv, state) / steps
        return self.denormalise(x)


def _beta_a1(alpha: float, n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Beta(alpha, 1) by inverse CDF (u^(1/alpha)), so that it honours a torch.Generator."""
    return torch.rand(n, device=device, generator=generator) ** (1 / alpha)
