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


def standardize(logits):
    logits = np.asarray(logits, np.float64)
    std = logits.std(axis=-1, keepdims=True)  # population std, ddof=0
    return logits / np.maximum(std, 1e-7)


def standardized_per_sample(teacher_logits, student_logits):
    return kl_divergence(
        softmax(standardize(teacher_logits)), softmax(standardize(student_logits))
    )


def cross_entropy_per_sample(labels, logits):
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == logits.shape[1]:
        targets = labels.astype(np.float64)
    else:
        targets = np.eye(logits.shape[1])[labels.reshape(-1).astype(int)]
    return -np.sum(targets * np.log(softmax(logits)), axis=-1)
