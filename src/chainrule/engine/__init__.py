"""The engine: tensors, the Function contract, the tape walk, the array backend.

- ``tensor``: Tensor (a NumPy array on the tape), grad mode, version stamps;
- ``tensor_methods``: a tensor's operators and op methods, each handing off to an op;
- ``function``: Function (forward and backward side by side), Context, the op registry;
- ``autograd``: the tape walk, ``backward``;
- ``backend``: the default dtype, the dtype policy, the random generator, ``unbroadcast``;
- ``factory``: ``tensor``, ``zeros``, ``randn`` and the other ways to make a tensor.

Nothing is imported here, so that any engine module can be imported first.
"""
