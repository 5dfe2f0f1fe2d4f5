"""Settings of networks small enough for unit tests (shared by the model, sampling, cine and training tests)."""

TINY_VAE = {"channels": [8, 8], "latent_channels": 2, "num_res_blocks": 1, "norm_num_groups": 8, "latent_scale": 0.5}
TINY_DENOISER = {"latent_channels": 2, "neighbours": 2, "channels": [8, 16], "num_res_blocks": 1,
                 "norm_num_groups": 8, "num_train_timesteps": 10}
