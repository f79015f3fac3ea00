"""Retrain the digits classifier of genzoo's image metrics and rewrite its shipped weights.

    python benchmarks/train_digits_classifier.py            # writes genzoo/metrics/data/digits_classifier.npz

Trained on the digits' train split (1,000 images), epoch chosen on the validation split (350),
accuracy reported on the test split (447); see ``genzoo.metrics.digits_classifier``.
"""

import time

from genzoo.metrics.digits_classifier import WEIGHTS, save_classifier, train_digits_classifier

if __name__ == "__main__":
    t0 = time.perf_counter()
    net, info = train_digits_classifier(verbose=True)
    save_classifier(net, info)
    print(f"{WEIGHTS}: {info} ({time.perf_counter() - t0:.0f} s)")
