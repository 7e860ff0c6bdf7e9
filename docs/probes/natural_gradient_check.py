"""Check for docs/probes/natural_gradient.patch: the probe's Fisher matrix (per-row logit Jacobians, every
row its own stacked circuit) against per-row autograd through the module's own forward, and its cost.

Run from a worktree with the patch applied:  PYTHONPATH=. python docs/probes/natural_gradient_check.py
"""
import time, torch, gymnasium as gym, numpy as np, yaml
from ray.rllib.core.columns import Columns
from rllib_quantum.modules import QuantumPPORLModule
from rllib_quantum.learners import natural_gradient as ng
cfg = yaml.safe_load(open("configs/quantum_independent_pong_features.yaml"))["model_config"]
m = QuantumPPORLModule(observation_space=gym.spaces.Box(-1,1,(5,),np.float32), action_space=gym.spaces.Discrete(3), model_config=cfg)
x = torch.rand(7,5)*2-1
# brute force: per-row Jacobian of logits through the module's own forward
params = ng.actor_parameters(m)
F = torch.zeros(103,103, dtype=torch.float64)
for r in range(7):
    logits = m.forward_train({Columns.OBS: x[r:r+1]})[Columns.ACTION_DIST_INPUTS][0]
    J = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(logits[k], params, retain_graph=True)]) for k in range(3)]).double()
    p = torch.softmax(logits.detach().double(), -1)
    F += J.T @ (torch.diag(p) - torch.outer(p,p)) @ J
F /= 7
F2 = ng.fisher(m, x)
print("dims", F2.shape, "max abs diff", (F-F2).abs().max().item(), "max", F.abs().max().item())
lg, _ = ng.per_row_logits(m, x)
print("logits diff", (lg - m.forward_train({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]).abs().max().item())
xb = torch.rand(500,5)*2-1
t=time.perf_counter(); 
for _ in range(5): ng.fisher(m, xb)
print("fisher 500 rows ms", (time.perf_counter()-t)/5*1000)
xb = torch.rand(2000,5)*2-1
t=time.perf_counter(); ng.fisher(m, xb); print("fisher 2000 rows ms", (time.perf_counter()-t)*1000)
ev = torch.linalg.eigvalsh(ng.fisher(m, xb)); print("eig min/max", ev.min().item(), ev.max().item(), "mean diag", torch.diagonal(ng.fisher(m,xb)).mean().item())
