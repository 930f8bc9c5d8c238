"""Labels shared by every layer."""

# A mention whose entity is not in the KB ("No Matching Entity"): AIDA's marker, and the reference's NME symbol, a
# candidate the EL reader can pick and the first relation slot of a cIE reader with `use_nme`.
NME = "--NME--"
