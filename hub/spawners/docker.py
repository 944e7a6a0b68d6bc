"""``DockerProfileSpawner``: DockerSpawner sized by the profile (image, CPU, memory, GPU).

Rules it guarantees:

* Only images named in the catalogue can be started (CVE-2023-48311): the image comes from the profile and
  ``allowed_images`` is the catalogue's set, so neither the form nor the API can pick another.
* ``cpu_limit``/``mem_limit`` come from the profile; a GPU device request is added only for profiles with GPUs and
  only where the host has one.

The Docker issue builds the images, host networking, home volumes and culling on top of this class.
"""

from __future__ import annotations

from dockerspawner import DockerSpawner
from traitlets import default

from ..catalogue import Profile
from .profiles import ProfileSpawnerMixin


class DockerProfileSpawner(ProfileSpawnerMixin, DockerSpawner):
    """One container per server, from the profile's image, with the profile's limits."""

    @default("allowed_images")
    def _allowed_images_default(self) -> list[str]:
        return sorted({p.image for p in self.catalogue.profiles.values()})

    def apply_profile(self, profile: Profile) -> None:
        super().apply_profile(profile)
        self.image = profile.image
        gpus = self.gpu_count(profile)
        extra = dict(self.extra_host_config)
        if gpus:
            extra["device_requests"] = [{"Driver": "nvidia", "Count": gpus, "Capabilities": [["gpu"]]}]
        else:
            extra.pop("device_requests", None)
        self.extra_host_config = extra
