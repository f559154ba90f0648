"""Scale-out: where torch work runs (device, precision) and how several processes share it
(torch.distributed under torchrun). docs/scale.md says when to use it."""
