"""The index on a real node: a household's documents (text, Markdown, a PDF, a photo of a
label) become searchable by meaning; changes, removals and moves are followed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import re

from heatcompute_node.index.embed import Embedder, Vectors

from .conftest import Household, MakeNode
from .documents import BOILER, BOILER_QUERY, PARCEL_LABEL, write_household


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


async def test_a_question_finds_its_passage_by_meaning_in_every_kind_of_file(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_household(share)
    node = await make_node(share)

    progress = await node.run()
    assert progress["files_indexed"] == 4, progress
    assert progress["files_failed"] == 0, progress
    assert progress["backlog"]["files_pending"] == 0

    # Not one word in common: only the meaning can lead there.
    assert not words(BOILER_QUERY) & words(BOILER)
    [best, *_] = await node.search(BOILER_QUERY)
    assert best["file"] == str(files["notes"])
    assert BOILER in best["text"].replace("Boiler: ", "")
    assert best["line"] == 7
    assert best["page"] is None

    [best, *_] = await node.search("how much do I pay myself when a water pipe bursts")
    assert best["file"] == str(files["insurance"])
    assert best["page"] == 2
    assert "deductible is 500 euros" in best["text"]

    [best, *_] = await node.search("baking a cake with fruit")
    assert best["file"] == str(files["recipe"])

    # The photo's text came through the node's own OCR models.
    [best, *_] = await node.search("a package delivered for Anna Weber")
    assert best["file"] == str(files["label"])
    assert best["text"].lower() == PARCEL_LABEL.lower()

    status, index = await node.get("/api/index")
    assert status == 200
    assert index["enabled"] is True
    assert index["files"] == 4
    assert index["chunks"] == 7  # notes 3, recipe 1, insurance 2 pages, label 1
    assert index["errors"] == []
    assert index["model"] == "all-MiniLM-L6-v2"
    assert index["last_run"]["files_indexed"] == 4
    assert index["backlog"]["files_pending"] == 0

    # The same figures in the node's status and /metrics.
    status, node_status = await node.get("/api/status")
    documents = node_status["documents"]
    assert (documents["files"], documents["chunks"], documents["errors"]) == (4, 7, 0)
    assert documents["chunks_embedded_total"] == 7
    async with node.session.get(f"{node.base}/metrics", headers=node.headers) as response:
        metrics = await response.text()
    assert "heatcompute_index_files 4.0" in metrics
    assert "heatcompute_index_chunks_embedded_total 7.0" in metrics


async def test_changed_removed_and_moved_files_are_followed(indexed_household: Household) -> None:
    node, files = indexed_household.node, indexed_household.files
    share = indexed_household.share

    # Changed: the recipe becomes a note about the bicycle; the cake is gone from it.
    files["recipe"].write_text(
        "Bicycle\n\nThe rear brake pads were replaced in spring; the chain needs oil monthly.\n",
        encoding="utf-8",
    )
    progress = await node.run()
    assert (progress["files_indexed"], progress["chunks_embedded"]) == (1, 1)
    [best, *_] = await node.search("maintenance of my bike")
    assert best["file"] == str(files["recipe"])
    assert "brake pads" in best["text"]
    found = await node.search("baking a cake with fruit", limit=50)
    assert not any("apples" in passage["text"] for passage in found)

    # Moved: same content under a new name; its passages move along, nothing is embedded.
    moved = share / "letters" / "insurance-2026.pdf"
    files["insurance"].rename(moved)
    progress = await node.run()
    assert progress["files_reused"] == 1
    assert progress["files_removed"] == 1
    assert progress["chunks_embedded"] == 0
    [best, *_] = await node.search("how much do I pay myself when a water pipe bursts")
    assert best["file"] == str(moved)
    assert best["page"] == 2

    # Removed: the notes leave the results, the rest stays.
    files["notes"].unlink()
    progress = await node.run()
    assert progress["files_removed"] == 1
    found = await node.search("When does my furnace warranty run out?", limit=50)
    assert found
    assert all(passage["file"] != str(files["notes"]) for passage in found)
    status, index = await node.get("/api/index")
    assert (index["files"], index["chunks"]) == (3, 4)


async def test_unreadable_files_are_listed_and_the_rest_is_indexed(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_household(share)
    (share / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (share / "photos" / "broken.png").write_bytes(b"not an image at all")
    (share / "binary.txt").write_bytes(b"\x00\x01\x02 binary junk")
    node = await make_node(share)

    progress = await node.run()
    assert progress["files_indexed"] == 4
    assert progress["files_failed"] == 3
    status, index = await node.get("/api/index")
    errors = {error["file"]: error["error"] for error in index["errors"]}
    assert set(errors) == {
        str(share / "broken.pdf"),
        str(share / "photos" / "broken.png"),
        str(share / "binary.txt"),
    }
    assert "PDF" in errors[str(share / "broken.pdf")]
    assert "binary" in errors[str(share / "binary.txt")]
    # Not retried while unchanged; fixed, it is indexed and leaves the list.
    again = await node.run()
    assert (again["files_failed"], again["files_indexed"]) == (0, 0)
    (share / "binary.txt").write_text("The spare key hangs in the shed.\n", encoding="utf-8")
    fixed = await node.run()
    assert fixed["files_indexed"] == 1
    status, index = await node.get("/api/index")
    assert str(share / "binary.txt") not in {error["file"] for error in index["errors"]}
    [best, *_] = await node.search("where is the extra house key")
    assert best["file"] == str(share / "binary.txt")
    assert files["notes"].exists()


async def test_a_link_out_of_the_shared_folder_is_never_followed(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    write_household(share)
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "passwords.txt").write_text("The bank PIN is 4711.\n", encoding="utf-8")
    (share / "passwords.txt").symlink_to(secret / "passwords.txt")
    (share / "private").symlink_to(secret, target_is_directory=True)
    node = await make_node(share)

    progress = await node.run()
    assert progress["files_indexed"] == 4
    status, index = await node.get("/api/index")
    assert index["files"] == 4
    assert index["errors"] == []
    found = await node.search("bank PIN code", limit=50)
    assert all(str(secret) not in p["file"] and "4711" not in p["text"] for p in found)
    assert all(p["file"].startswith(str(share)) for p in found)


async def test_an_unreadable_index_file_is_put_aside_and_rebuilt(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_household(share)
    database = tmp_path / "broken" / "index.sqlite3"
    database.parent.mkdir()
    database.write_bytes(b"this is not an SQLite database, it is a disk fault" * 100)
    node = await make_node(share, index_database=database)

    progress = await node.run()
    assert progress["files_indexed"] == 4
    [best, *_] = await node.search(BOILER_QUERY)
    assert best["file"] == str(files["notes"])
    [aside] = database.parent.glob("index.sqlite3.broken-*")
    assert aside.read_bytes().startswith(b"this is not an SQLite database")


async def test_a_file_swapped_for_a_link_after_the_walk_is_not_read(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_household(share)
    secret = tmp_path / "private" / "passwords.txt"
    secret.parent.mkdir()
    secret.write_text("The bank PIN is 4711.\n", encoding="utf-8")
    node = await make_node(share)
    assert node.index.backlog().files_pending == 4  # walked at start

    # Between the walk and the read, the recipe becomes a link out of the folder.
    files["recipe"].unlink()
    files["recipe"].symlink_to(secret)
    progress = await node.index.index_some(100, background=False)  # no new walk
    assert (progress.files_indexed, progress.files_failed) == (3, 1)
    [error] = node.index.errors
    assert error.file == str(files["recipe"])
    found = await node.search("bank PIN code", limit=50)
    assert all("4711" not in passage["text"] for passage in found)


class RenamedModel:
    """The node's real embedder under another model's name: what the index sees when the
    user switches the embedding model (the vectors are real; only the name differs)."""

    def __init__(self, embedder: Embedder, name: str) -> None:
        self._embedder = embedder
        self._name = name

    @property
    def model_name(self) -> str | None:
        return self._name

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await self._embedder.embed(texts)


async def test_another_embedding_model_starts_a_new_index(indexed_household: Household) -> None:
    node, files = indexed_household.node, indexed_household.files
    [best, *_] = await node.search(BOILER_QUERY)
    assert best["file"] == str(files["notes"])

    node.index.embedder = RenamedModel(node.index.embedder, "another-embedder")
    # Vectors of another model don't compare: nothing is found until indexed anew.
    assert await node.search(BOILER_QUERY) == []
    progress = await node.run()
    assert progress["files_indexed"] == 4, progress
    [best, *_] = await node.search(BOILER_QUERY)
    assert best["file"] == str(files["notes"])
    assert node.index.store.meta("model") == "another-embedder"
