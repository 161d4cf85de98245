"""The plain PyTorch eager loop the studies' reference code trains with.

Benchmark-only: the library never imports this file. The architectures are
the CIFAR ResNets of RepDistiller (`models/resnet.py`): a 3x3 stem, three
stages of basic blocks (stride 1, 2, 2), a 1x1-conv + BN projection wherever
the shape changes, global average pooling and a linear classifier; resnet8x4
and resnet32x4 are four times wider (stem 32, stages 64/128/256). Tensors are
NCHW, as in the reference code. One step is what RepDistiller's
`train_distill` does per batch with mixup: mix the batch with one Beta(α, α)
draw, the frozen teacher's forward pass under `no_grad`, the student's
forward pass, `w · CE + (1 − w) · T² · KL`, backward, SGD with momentum and
weight decay.

Usage (standalone):

    .venv/bin/python benchmarks/torch_reference.py --pair resnet56:resnet20
"""

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + residual)


class CifarResNet(nn.Module):
    def __init__(self, depth, widths, num_classes=100):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"A CIFAR ResNet has 6n+2 layers, got depth={depth}.")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_planes = [], widths[0]
        for stage, planes in enumerate(widths[1:]):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)
ARCHITECTURES = {
    "resnet8": (8, _NARROW),
    "resnet20": (20, _NARROW),
    "resnet56": (56, _NARROW),
    "resnet110": (110, _NARROW),
    "resnet8x4": (8, _WIDE),
    "resnet32x4": (32, _WIDE),
}


def get_torch_model(name, num_classes=100):
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(ARCHITECTURES)}.")
    depth, widths = ARCHITECTURES[name]
    return CifarResNet(depth, widths, num_classes)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def kd_loss(student_logits, teacher_logits, temperature):
    """Hinton KD as RepDistiller's DistillKL: T² · KL(p_t ‖ p_s), batch mean."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2


class TorchDistillStep:
    """One eager distillation step, mixup included, on a batch already in memory.

    Arguments:
        teacher_name, student_name: keys of `ARCHITECTURES`.
        num_classes: number of logits.
        temperature: the KD temperature.
        student_loss_weight: weight `w` of the cross-entropy.
        alpha: mixup's Beta(α, α) concentration.
        seed: seed of the weights and of the mixup draws.

    Example:

    ```python
    step = TorchDistillStep("resnet56", "resnet20")
    images = torch.rand(64, 3, 32, 32); labels = torch.randint(0, 100, (64,))
    loss = step(images, labels)
    ```
    """

    def __init__(
        self,
        teacher_name,
        student_name,
        num_classes=100,
        temperature=4.0,
        student_loss_weight=0.1,
        alpha=1.0,
        seed=0,
    ):
        torch.manual_seed(seed)
        self.teacher = get_torch_model(teacher_name, num_classes).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.student = get_torch_model(student_name, num_classes).train()
        self.optimizer = torch.optim.SGD(
            self.student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4
        )
        self.num_classes = num_classes
        self.temperature = temperature
        self.weight = student_loss_weight
        self.alpha = alpha
        self.rng = np.random.default_rng(seed)

    def __call__(self, images, labels):
        # Mixup as in the reference loops: one λ per batch, a random partner.
        lam = float(self.rng.beta(self.alpha, self.alpha))
        index = torch.randperm(images.shape[0])
        mixed = lam * images + (1.0 - lam) * images[index]
        one_hot = F.one_hot(labels, self.num_classes).float()
        targets = lam * one_hot + (1.0 - lam) * one_hot[index]

        with torch.no_grad():
            teacher_logits = self.teacher(mixed)
        student_logits = self.student(mixed)
        supervised = -(targets * F.log_softmax(student_logits, dim=1)).sum(1).mean()
        distillation = kd_loss(student_logits, teacher_logits, self.temperature)
        loss = self.weight * supervised + (1.0 - self.weight) * distillation

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach().item()  # As the reference loops log it each step (a sync).


def random_batch(batch_size=64, num_classes=100, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, 32, 32, generator=generator)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return images, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="resnet56:resnet20", help="teacher:student")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    teacher_name, student_name = args.pair.split(":")
    step = TorchDistillStep(teacher_name, student_name)
    images, labels = random_batch(args.batch_size)
    for _ in range(args.warmup):
        step(images, labels)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step(images, labels)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"{args.pair}: {median * 1e3:.1f} ms/step, {args.batch_size / median:.1f} images/s "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
