import torch, time, triton_segloss as tsl
import torch.nn.functional as F
torch.set_num_threads(2)
x0 = torch.randn(8,1,256,256); t = (torch.rand(8,1,256,256)>0.7).float()
def seed000(logit, truth):
    logit = logit.view(-1); truth = truth.view(-1)
    loss = F.binary_cross_entropy_with_logits(logit, truth, reduction='none')
    pos = (truth>0.5).float(); neg = (truth<0.5).float()
    pw = pos.sum().item() + 1e-12; nw = neg.sum().item() + 1e-12
    return (0.25*pos*loss/pw + 0.75*neg*loss/nw).sum()
fns = {"tsl bce_with_logits (torch path)": lambda x: tsl.bce_with_logits(x, t),
       "F.binary_cross_entropy_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, t),
       "tsl balance=(0.25,0.75) (torch path)": lambda x: tsl.bce_with_logits(x, t, balance=(0.25, 0.75)),
       "seed 000 weighted BCE (eager)": lambda x: seed000(x, t)}
times = {k: [] for k in fns}
for r in range(25):
    for k, f in fns.items():
        x = x0.clone().requires_grad_(True)
        t0 = time.perf_counter(); f(x).backward(); dt = time.perf_counter() - t0
        if r >= 3: times[k].append(dt * 1e3)
for k, v in times.items():
    v.sort(); print(f"{k}: median {v[len(v)//2]:.2f} ms")
