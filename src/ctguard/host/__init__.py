"""The one way into host state: files through HostRoot, programs through Commands."""
