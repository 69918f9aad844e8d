"""Site and admin bundles: one participant's startup kit plus how to run it (see `fedgen.bundle.build`)."""

from fedgen.bundle.build import Bundle, WrittenBundle, build_bundle, write_bundle

__all__ = ["Bundle", "WrittenBundle", "build_bundle", "write_bundle"]
