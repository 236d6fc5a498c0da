"""AdamW with the same arithmetic as Keras's and a fraction of its ops per training step.

On a CPU the training step of vidcls's small models is bounded by how many ops it
executes, not by their arithmetic (docs/training.md). Keras's AdamW (3.15, TensorFlow
backend) spends most of the step's ops on bookkeeping that does not depend on the
variable:
- its weight decay reads `self.learning_rate` once per variable, and with a schedule
  (vidcls's warmup + cosine) that evaluates the whole schedule again for each one;
- its update recomputes beta_1^t, beta_2^t and the bias correction for each variable,
  then updates m, v and the variable in about twelve element-wise ops.

`FusedAdamW` evaluates the schedule and the powers once per step and updates each
variable with one `ResourceApplyAdam` kernel (TensorFlow's fused Adam, the same
formula: m += (g - m)(1 - beta_1), v += (g^2 - v)(1 - beta_2), w -= lr sqrt(1 - beta_2^t)
/ (1 - beta_1^t) m / (sqrt(v) + epsilon)). Its variables and settings are AdamW's,
so a checkpoint written with either resumes with the other. It lives with the models
because a run's `.keras` file names it: `import vidcls.models` (or `import vidcls`, then
Keras) registers it as it registers the model classes.
"""

from __future__ import annotations

import keras

from vidcls.keras_compat import adam_slots, decays_weight, merge_updates


@keras.saving.register_keras_serializable(package="vidcls")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, with one fused kernel per variable on TensorFlow.

    Other backends, AMSGrad and sparse gradients take Keras's own update.

    Example:
        >>> optimizer = FusedAdamW(learning_rate=1e-3, weight_decay=1e-4)
    """

    def __init__(self, *args, name: str = "adamw", **kwargs):
        super().__init__(*args, name=name, **kwargs)  # AdamW's name, so its variables are named as AdamW's

    def _fused(self) -> bool:
        return keras.backend.backend() == "tensorflow" and not self.amsgrad

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self._fused():
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        # The schedule once per step, not once per variable.
        rate = tf.cast(self.learning_rate, "float32") * tf.cast(self.weight_decay, "float32")

        def decay_all(distribution, variables, rate):
            def decay(variable, rate):
                variable.assign_sub(variable * tf.cast(rate, variable.dtype))

            for variable in map(_tf_variable, variables):
                if decays_weight(self, variable):
                    distribution.extended.update(variable, decay, args=(rate,), group=False)

        merge_updates(self, decay_all, variables, rate)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self._fused():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import tensorflow as tf

        step = tf.cast(self.iterations + 1, "float32")
        scalars = (tf.cast(learning_rate, "float32"), tf.pow(tf.cast(self.beta_1, "float32"), step),
                   tf.pow(tf.cast(self.beta_2, "float32"), step))
        # Keras passes `learning_rate` through the distribution strategy to update_step
        # for each variable; the step's scalars travel the same way.
        return super()._backend_update_step(grads, trainable_variables, scalars)

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if not isinstance(learning_rate, tuple):  # not fused (another backend, AMSGrad)
            return super().update_step(gradient, variable, learning_rate)
        if isinstance(gradient, tf.IndexedSlices):  # sparse: Keras's own update
            return super().update_step(gradient, variable, learning_rate[0])
        lr, beta_1_power, beta_2_power = (tf.cast(value, variable.dtype) for value in learning_rate)
        momentum, velocity = adam_slots(self, variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(momentum), v=_handle(velocity),
            beta1_power=beta_1_power, beta2_power=beta_2_power, lr=lr,
            beta1=tf.cast(self.beta_1, variable.dtype), beta2=tf.cast(self.beta_2, variable.dtype),
            epsilon=tf.cast(self.epsilon, variable.dtype), grad=tf.cast(gradient, variable.dtype),
            use_locking=False, use_nesterov=False)


def _tf_variable(variable):
    """The TensorFlow variable behind a Keras one (a TensorFlow variable as it is)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (inside a distribution
    strategy's update, the copy on the device being updated)."""
    return _tf_variable(variable).handle

