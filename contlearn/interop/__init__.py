"""Adapters that leave and enter contlearn: a task's state written as an AdapterHub or peft
folder, and such a folder read back as a contlearn task's state, without loss.

``names`` says what the backbone's modules are called outside contlearn, ``folder`` reads and
writes the folders (safetensors and JSON only), ``adapterhub`` and ``peft_format`` map the keys
and configs of each library. Nothing here touches the ledger: ``ops.interop`` does.
"""
