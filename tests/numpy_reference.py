"""Float64 NumPy implementations written straight from the definitions, for tests."""

import numpy as np


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def kl_divergence(p, q):
    """Per-row KL(p || q) for probability rows."""
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def kd_per_sample(teacher_logits, student_logits, temperature):
    p = softmax(np.asarray(teacher_logits, np.float64) / temperature)
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    return temperature**2 * kl_divergence(p, q)


def standardize(logits, ddof=1):
    """MIX-KD's MIXSTD pre-process: z / max(std(z), 1e-7); ddof=1 as torch.std."""
    logits = np.asarray(logits, np.float64)
    std = logits.std(axis=-1, keepdims=True, ddof=ddof)
    return logits / np.maximum(std, 1e-7)


def standardized_per_sample(teacher_logits, student_logits, ddof=1):
    return kl_divergence(
        softmax(standardize(teacher_logits, ddof)), softmax(standardize(student_logits, ddof))
    )


def zscore(logits, ddof=1):
    """Sun et al. 2024's pre-process: (z - mean) / (1e-7 + std), std with ddof."""
    logits = np.asarray(logits, np.float64)
    mean = logits.mean(axis=-1, keepdims=True)
    return (logits - mean) / (1e-7 + logits.std(axis=-1, keepdims=True, ddof=ddof))


def logit_standardized_kd_per_sample(teacher_logits, student_logits, temperature, ddof=1):
    """LS-KD from its definition: KD at base temperature tau on z-scored logits."""
    return kd_per_sample(zscore(teacher_logits, ddof), zscore(student_logits, ddof), temperature)


def dkd_per_target(teacher_logits, student_logits, target, alpha, beta, temperature):
    """DKD of one sample for one target class, from the published definition."""
    p = softmax(np.asarray(teacher_logits, np.float64) / temperature)
    q = softmax(np.asarray(student_logits, np.float64) / temperature)
    others = np.arange(len(p)) != target
    # 1 - p_g as the sum of the other classes: exact for a confident row too.
    b_p = np.array([p[target], p[others].sum()])
    b_q = np.array([q[target], q[others].sum()])
    p_hat = p[others] / p[others].sum()
    q_hat = q[others] / q[others].sum()
    tckd = np.sum(b_p * (np.log(b_p) - np.log(b_q)))
    nckd = np.sum(p_hat * (np.log(p_hat) - np.log(q_hat)))
    return temperature**2 * (alpha * tckd + beta * nckd)


def dkd_per_sample(teacher_logits, student_logits, labels, alpha, beta, temperature):
    """Hard labels: DKD per sample; soft rows: the label-weighted sum over targets (brute force)."""
    teacher_logits = np.asarray(teacher_logits, np.float64)
    student_logits = np.asarray(student_logits, np.float64)
    labels = np.asarray(labels)
    num_classes = teacher_logits.shape[1]
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        rows = labels.astype(np.float64)
    else:
        rows = np.eye(num_classes)[labels.reshape(-1).astype(int)]
    out = np.zeros(len(teacher_logits))
    for i in range(len(teacher_logits)):
        for g in range(num_classes):
            if rows[i, g] > 0:
                out[i] += rows[i, g] * dkd_per_target(
                    teacher_logits[i], student_logits[i], g, alpha, beta, temperature)
    return out


def mdistiller_dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    """mdistiller's `dkd_loss` (mdistiller/distillers/DKD.py) transcribed to float64 NumPy.

    torch's `F.kl_div(log_q, p, size_average=False)` is `sum(p * (log p - log_q))`
    (terms with p = 0 count 0); the reference divides by the batch size.
    """
    logits_student = np.asarray(logits_student, np.float64)
    logits_teacher = np.asarray(logits_teacher, np.float64)
    target = np.asarray(target).reshape(-1).astype(int)
    gt_mask = np.zeros_like(logits_student)
    gt_mask[np.arange(len(target)), target] = 1.0
    other_mask = 1.0 - gt_mask

    def log_softmax(x):
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def cat_mask(t, mask1, mask2):
        return np.concatenate([(t * mask1).sum(1, keepdims=True), (t * mask2).sum(1, keepdims=True)], 1)

    def kl_div_sum(log_input, target_probs):
        safe = np.where(target_probs > 0, target_probs, 1.0)
        return np.sum(np.where(target_probs > 0, target_probs * (np.log(safe) - log_input), 0.0))

    pred_student = cat_mask(softmax(logits_student / temperature), gt_mask, other_mask)
    pred_teacher = cat_mask(softmax(logits_teacher / temperature), gt_mask, other_mask)
    tckd_loss = kl_div_sum(np.log(pred_student), pred_teacher) * temperature**2 / target.shape[0]
    pred_teacher_part2 = softmax(logits_teacher / temperature - 1000.0 * gt_mask)
    log_pred_student_part2 = log_softmax(logits_student / temperature - 1000.0 * gt_mask)
    nckd_loss = kl_div_sum(log_pred_student_part2, pred_teacher_part2) * temperature**2 / target.shape[0]
    return alpha * tckd_loss + beta * nckd_loss


def ls_kd_reference_loss(logits_student, logits_teacher, temperature):
    """The logit-standardisation code's `normalize` + `kd_loss(..., logit_stand=True)`, transcribed.

    normalize(z) = (z - z.mean(-1)) / (1e-7 + z.std(-1)) with torch.std (unbiased);
    loss = kl_div(log_softmax(s/T), softmax(t/T), reduction="none").sum(1).mean() * T**2.
    """
    def normalize(logit):
        mean = logit.mean(axis=-1, keepdims=True)
        stdv = logit.std(axis=-1, keepdims=True, ddof=1)
        return (logit - mean) / (1e-7 + stdv)

    s = normalize(np.asarray(logits_student, np.float64))
    t = normalize(np.asarray(logits_teacher, np.float64))
    log_pred_student = np.log(softmax(s / temperature))
    pred_teacher = softmax(t / temperature)
    loss_kd = np.sum(pred_teacher * (np.log(pred_teacher) - log_pred_student), axis=1).mean()
    return loss_kd * temperature**2


def cross_entropy_per_sample(labels, logits):
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == logits.shape[1]:
        targets = labels.astype(np.float64)
    else:
        targets = np.eye(logits.shape[1])[labels.reshape(-1).astype(int)]
    return -np.sum(targets * np.log(softmax(logits)), axis=-1)
