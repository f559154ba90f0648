"""The hand-built bidirectional GRU equals torch's packed bidirectional GRU on padded batches."""

import torch

from zhcls.models.nets import BiGRUNet, reverse_within


def test_reverse_within_keeps_padding_at_the_end():
    x = torch.arange(8.0).reshape(2, 4, 1)
    out = reverse_within(x, torch.tensor([4, 2]))
    assert out[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_matches_packed_bidirectional_gru():
    torch.manual_seed(0)
    net = BiGRUNet(num_ids=20, n_classes=3, embed_dim=8, hidden_size=6, num_layers=1, dropout=0.0).eval()
    ref = torch.nn.GRU(8, 6, batch_first=True, bidirectional=True)
    fwd, bwd = net.forward_layers[0], net.backward_layers[0]
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(fwd, name))
            getattr(ref, name + "_reverse").copy_(getattr(bwd, name))
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0]])
    lengths = torch.tensor([5, 2])
    x = net.embedding(ids)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=5)
    ahead, _ = fwd(x)
    behind, _ = bwd(reverse_within(x, lengths))
    got = torch.cat([ahead, reverse_within(behind, lengths)], dim=2)
    mask = (torch.arange(5)[None, :] < lengths[:, None]).unsqueeze(-1)
    torch.testing.assert_close(got * mask, expected * mask)
