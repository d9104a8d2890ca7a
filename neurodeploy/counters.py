"""The counters a simulator run records, by name: attributes of :class:`neurodeploy.sim.Recording`,
each a dict from neuron layer index to the total over the batch and every step.

A synaptic event is one spike (or graded message) delivered over one nonzero
synapse; a neuron update is one neuron stepped; a u wrap is a current that left
its 24 bits and wrapped; a v saturation is a voltage held at its 24-bit limit.
"""

COUNTERS = ("spike_count", "synaptic_events", "neuron_updates", "u_wraps", "v_saturations")
FAULTS = ("u_wraps", "v_saturations")  # the numerical faults among them
# those a run adds up while the neurons step (neuron updates are known beforehand), in the order
# the simulators' chunks of samples return them
STEPPED = ("synaptic_events", "u_wraps", "v_saturations", "spike_count")
