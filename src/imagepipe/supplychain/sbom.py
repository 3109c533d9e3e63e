"""The SBOM of an image: CycloneDX JSON (cyclonedx-python-lib) with every Debian package and every Python
distribution in it (inventory.py), each with its version and purl, and the base image with its digest."""

from __future__ import annotations

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from imagepipe.image.refs import ImageRef
from imagepipe.supplychain.inventory import DebPackage, PyDist

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def build(*, image: str, digest: str, base_ref: str, base_digest: str | None, debs: list[DebPackage],
          dists: list[PyDist], platform: str | None = None) -> str:
    repo = ImageRef.parse(image).repository.split("/")[-1]
    base = ImageRef.parse(base_ref)
    bom = Bom()
    # the platform of a multi-platform run's image: in the purl (as the purl spec's oci `arch` qualifier) and as
    # a property
    qualifiers = {"repository_url": image} | ({"arch": platform.split("/")[1]} if platform else {})
    bom.metadata.component = Component(
        name=image, version=digest, type=ComponentType.CONTAINER, bom_ref=f"image:{digest}",
        purl=PackageURL(type="oci", name=repo, version=digest, qualifiers=qualifiers),
        properties=[Property(name="imagepipe:platform", value=platform)] if platform else None)
    # An unknown base digest is left out (CycloneDX's version is optional), never filled with a placeholder.
    bom.components.add(Component(
        name=base_ref, version=base_digest, type=ComponentType.CONTAINER, bom_ref=f"base:{base_ref}",
        description="base image (FROM)" if base_digest else "base image (FROM); its digest could not be read",
        purl=PackageURL(type="oci", name=base.repository.split("/")[-1], version=base_digest,
                        qualifiers={"repository_url": base.name})))
    for d in debs:
        purl = PackageURL(type="deb", namespace="debian", name=d.name, version=d.version,
                          qualifiers={"arch": d.arch, "distro": "debian-12"})
        bom.components.add(Component(name=d.name, version=d.version, type=ComponentType.LIBRARY, purl=purl,
                                     bom_ref=purl.to_string(), group="debian"))
    for p in dists:
        purl = PackageURL(type="pypi", name=p.name.lower().replace("_", "-"), version=p.version)
        bom.components.add(Component(name=p.name, version=p.version, type=ComponentType.LIBRARY, purl=purl,
                                     bom_ref=purl.to_string(), group="pypi"))
    # everything listed is in the image: the image depends on each (a flat, complete graph)
    bom.register_dependency(bom.metadata.component, list(bom.components))
    return JsonV1Dot6(bom).output_as_string(indent=2)
