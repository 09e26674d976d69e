"""Keras / TensorFlow training throughput of the pretrained VGG16 model (Models/vgg16_pretrained_fast.graph).

    python keras_pretrained.py [STEPS]      (the peers' venv python; default 8 timed steps)

The same layers as the graph: VGG16 blocks 1-4 on 48x48x3 (the gray face on three channels),
blocks 1-3 frozen (trainable=False: Keras still runs their forward every step), flatten,
dense 2048 relu (max-norm 4, L2 1e-6), batchnorm, dropout 0.8, dense 2048 relu (max-norm, L2),
batchnorm, dense 7; Adam 1e-4, batch 128, random weights and inputs (timing only; the
weights do not change the time). Three warm-up steps, then STEPS timed train_on_batch calls.
Prints one line as ../shared/bench/bench_peers.py does:
    keras-tf vgg16_pretrained train bs=128  <img/s> img/s <ms> ms
"""
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
from keras import layers

BS = 128


def model():
    reg, mn = keras.regularizers.l2(1e-6), keras.constraints.MaxNorm(4)
    x = inp = keras.Input((48, 48, 3))
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3)], start=1):
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", trainable=block == 4)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(2048, activation="relu", kernel_constraint=mn, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99)(x)
    x = layers.Dropout(0.8)(x)
    x = layers.Dense(2048, activation="relu", kernel_constraint=mn, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99)(x)
    out = layers.Dense(7, kernel_regularizer=reg)(x)
    return keras.Model(inp, out)


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    m = model()
    m.compile(optimizer=keras.optimizers.Adam(1e-4),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = (np.random.rand(BS, 48, 48, 3) * 255).astype(np.float32)
    y = np.random.randint(0, 7, BS)
    for _ in range(3):
        m.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        m.train_on_batch(x, y)
    dt = (time.perf_counter() - t) / steps
    print(f"{'keras-tf':8s} {'vgg16_pretrained':12s} {'train':6s} bs={BS:<4d} {BS / dt:9.1f} img/s {dt * 1e3:9.2f} ms",
          flush=True)


if __name__ == "__main__":
    main()
